"""The collapse lab: each ablation collapses within its short run on shapes, its intact twin does not."""

import math
from dataclasses import asdict

import pytest

from conftest import open_app
from sslcore.collapse import ABLATIONS, BY_KEY, ablation_of, is_broken, lab_configs, new_group, verdict
from sslcore.runs import RunConfig, RunStore
from sslcore.runs.execute import execute
from sslcore.runs.scheduler import OPERATOR, cancel



def test_pairs_differ_only_in_the_device():
    ablation = BY_KEY["byol-no-predictor"]
    intact, broken = lab_configs(ablation, RunConfig(seed=7, batch_size=64))
    assert (intact.method, intact.steps, intact.seed, intact.batch_size) == ("byol", ablation.steps, 7, 64)
    assert asdict(broken) == {**asdict(intact), "options": {"predictor": False}}
    group = new_group(ablation)
    assert ablation_of(group) == ablation and ablation_of("race-x") is None


def test_verdicts_read_the_signal_over_the_last_steps():
    std = BY_KEY["simclr-no-negatives"]
    steps = list(range(1, 41))
    flat = {"collapse_std": (steps, [0.005] * 40)}
    spread = {"collapse_std": (steps, [0.08] * 40)}
    assert verdict(std, flat).collapsed is True and "Collapsed" in verdict(std, flat).text
    assert verdict(std, spread).collapsed is False
    assert verdict(std, {"collapse_std": ([1, 2], [0.0, 0.0])}).collapsed is None  # too early
    uniform = BY_KEY["dino-no-sharpening"]
    ln_k = math.log(1024)
    assert verdict(uniform, {"teacher_entropy": (steps, [0.9996 * ln_k] * 40)}).collapsed is True
    # Intact DINO's teacher is still near uniform after 300 steps (0.968 measured): not collapsed.
    assert verdict(uniform, {"teacher_entropy": (steps, [0.968 * ln_k] * 40)}).collapsed is False
    rank = BY_KEY["byol-no-predictor"]
    assert verdict(rank, {"effective_rank": (steps, [7.2] * 40)}).collapsed is True
    assert verdict(rank, {"effective_rank": (steps, [10.5] * 40)}).collapsed is False
    one_hot = BY_KEY["dino-no-centring"]
    assert verdict(one_hot, {"teacher_entropy": (steps, [0.01] * 40)}).value == pytest.approx(0.01 / ln_k)


def short_pair(tmp_path, ablation, steps=None, batch_size=None):
    store = RunStore(tmp_path)
    out = []
    for cfg in lab_configs(ablation, RunConfig(knn_bank=500, knn_test=200, knn_every_seconds=1e9, knn_stages=False)):
        cfg = cfg.with_dataset_defaults()
        cfg = RunConfig.from_dict({**asdict(cfg), "steps": steps or ablation.steps, "batch_size": batch_size or cfg.batch_size})
        run_id = store.create(asdict(cfg))
        execute(cfg, store, run_id, log=lambda s: None)
        out.append(verdict(ablation, store.metrics(run_id)))
    return out


@pytest.mark.slow
def test_simclr_without_negatives_collapses_and_with_them_does_not(tmp_path):
    # Half the lab's steps at a quarter of its batch, to keep CI short: measured std 0.0005 broken, 0.049 intact
    # (the lab's own 300 steps at 256: 0.0004 and 0.072).
    intact, broken = short_pair(tmp_path, BY_KEY["simclr-no-negatives"], steps=150, batch_size=64)
    assert broken.collapsed is True, broken.text
    assert intact.collapsed is False, intact.text


@pytest.mark.long
@pytest.mark.parametrize("key", [a.key for a in ABLATIONS if a.key != "simclr-no-negatives"])
def test_each_ablation_collapses_and_its_intact_twin_does_not(tmp_path, key):
    intact, broken = short_pair(tmp_path, BY_KEY[key])
    assert broken.collapsed is True, broken.text
    assert intact.collapsed is False, intact.text


def test_the_page_queues_both_variants_as_one_experiment():
    at = open_app("views/collapse.py")
    assert any("No experiment" in i.value for i in at.info)
    at.selectbox(key="collapse_ablation").set_value(BY_KEY["dino-no-centring"]).run()
    at.button(key="FormSubmitter:collapse_form-Train the broken and the intact variant").click().run()
    assert not at.exception, [e.value for e in at.exception]
    from ui.state import run_store

    runs = run_store().list()
    assert len(runs) == 2 and len({r.group_id for r in runs}) == 1
    ablation = BY_KEY["dino-no-centring"]
    assert sorted(is_broken(r, ablation) for r in runs) == [False, True]
    assert all(r.method == "dino" and r.config["steps"] == ablation.steps for r in runs)
    assert any(m.value.startswith("**intact**") for m in at.markdown) and any(
        m.value.startswith("**broken**") for m in at.markdown)
    for r in runs:  # no need to train them here
        cancel(run_store(), r.id, OPERATOR)
