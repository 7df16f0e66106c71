"""Comparing runs: scores with protocols, fairness flags, aligned curves, shared embeddings, races."""

import time
from dataclasses import asdict

import pytest
import torch

from conftest import open_app
from sslcore.compare import (align_curves, comparison_rows, differences,
                             embed_runs, fairness_flags, lane, launch_race, race_configs, races, scores)
from sslcore.runs import DONE, RunConfig, RunRecord, RunStore
from sslcore.runs.config import DEFAULT_VIT, backbones_for
from sslcore.runs.execute import execute
from sslcore.runs.scheduler import OPERATOR, cancel

KNN = {"k": 20, "t": 0.1, "bank_size": 5000, "test_size": 1000}


def record(run_id: str, group: str = "", status: str = "finished", created: float = 0.0,
           summary: dict | None = None, **config) -> RunRecord:
    cfg = asdict(RunConfig(**config))
    full = {"knn_top1": 50.0, "knn_top1_random_init": 20.0, "knn_protocol": dict(KNN), "device": "cpu",
            **(summary or {})}
    return RunRecord(id=run_id, created=created, updated=created, status=status, method=cfg["method"],
                     dataset=cfg["dataset"], backbone=cfg["backbone"], config=cfg, summary=full, error="", pid=None,
                     stop_requested=False, group_id=group)


def test_scores_carry_their_protocols():
    probe = {"c": 1.0, "train_size": 50}
    summary = {"knn_top1": 61.5, "knn_top1_random_init": 22.0, "knn_protocol": KNN, "loss": 3.2, "steps": 100,
               "linear_probe_top1": 70.0, "linear_probe_protocol": probe,
               "linear": {"1%": {"top1": 40.0, "protocol": {"fraction": 0.01}}, "100%": {"accuracy": 72.0}},
               "seconds": 60.0}
    s = scores(summary)
    assert set(s) == {"knn_top1", "knn_top1_random_init", "linear_probe_top1", "linear.1%", "linear.100%"}
    assert s["knn_top1"] == (61.5, KNN, "knn_protocol")
    assert s["knn_top1_random_init"].protocol_key == "knn_protocol"  # one protocol, shared
    assert s["linear_probe_top1"] == (70.0, probe, "linear_probe_protocol")
    assert s["linear.1%"] == (40.0, {"fraction": 0.01}, "linear.1%.protocol")
    assert s["linear.100%"].value == 72.0 and s["linear.100%"].protocol is None
    scaled = {"top1": 29.2, "random_init": 18.0, "stages": [20.2, 29.2], "protocol": {**KNN, "input_size": 64}}
    s = scores({**summary, "knn_train_scale": scaled})
    assert s["knn_train_scale"] == (29.2, scaled["protocol"], "knn_train_scale.protocol")
    assert s["knn_train_scale.random_init"] == (18.0, scaled["protocol"], "knn_train_scale.protocol")


def test_equal_runs_have_no_flags():
    runs = [record("a", method="simclr"), record("b", method="byol"), record("c", method="moco")]
    flags = fairness_flags(runs)
    assert flags == {"a": [], "b": [], "c": []} and differences(flags) == {}
    assert [r["fairness"] for r in comparison_rows(runs)] == ["ok"] * 3
    assert fairness_flags([record("solo", backbone="vit_tiny")]) == {"solo": []}


def test_the_odd_one_out_is_flagged():
    runs = [record("a"), record("b", method="byol"), record("c", method="mae", backbone="vit_tiny", dataset="digits")]
    flags = fairness_flags(runs)
    assert flags["a"] == flags["b"] == []
    by_property = {f.property: f for f in flags["c"]}
    assert set(by_property) == {"backbone", "dataset"}
    assert by_property["backbone"].severity == "differs" and by_property["backbone"].others == ("convnet",)
    assert by_property["dataset"].severity == "incomparable"
    assert differences(flags) == {"incomparable": ["dataset"], "differs": ["backbone"]}
    assert "incomparable: dataset digits (others: shapes)" in comparison_rows(runs)[2]["fairness"]


def test_a_tie_flags_every_run_and_budget_kinds_do_not_compare():
    runs = [record("a", max_seconds=60.0), record("b", steps=500, max_seconds=None)]
    flags = fairness_flags(runs)
    for run_id in ("a", "b"):
        props = {f.property: f.severity for f in flags[run_id]}
        assert props == {"budget kind": "incomparable", "budget": "differs"}
    assert differences(flags) == {"incomparable": ["budget kind"], "differs": ["budget"]}


def test_a_different_protocol_is_incomparable_and_protocols_only_count_where_scores_exist():
    other_k = {**KNN, "k": 200}
    runs = [record("a"), record("b"), record("c", summary={"knn_protocol": other_k})]
    (flag,) = fairness_flags(runs)["c"]
    assert (flag.property, flag.severity) == ("knn_protocol", "incomparable")
    # A linear probe that only one run has is shown, not flagged.
    runs = [record("a", summary={"linear_probe_top1": 70.0, "linear_probe_protocol": {"c": 1.0}}), record("b")]
    assert fairness_flags(runs) == {"a": [], "b": []}
    rows = comparison_rows(runs)
    assert rows[0]["linear_probe_top1"] == 70.0 and rows[0]["linear_probe_top1 protocol"] == "c=1.0"
    assert rows[1]["linear_probe_top1"] is None and rows[1]["linear_probe_top1 protocol"] == ""
    assert (rows[0]["k"], rows[0]["T"], rows[0]["bank"], rows[0]["test"]) == (20, 0.1, 5000, 1000)
    assert rows[0]["budget"] == "60 s" and rows[0]["kNN top-1 %"] == 50.0


def test_align_curves_on_steps_and_seconds():
    metrics = {"a": {"loss": ([1, 2, 3], [3.0, float("nan"), 2.0]), "knn_top1": ([0, 3], [10.0, 30.0])},
               "b": {"loss": ([1, 2], [4.0, 3.5])}}
    times = {"a": {0: 0.0, 1: 0.5, 2: 1.0, 3: 1.5}, "b": {1: 2.0, 2: 4.0}}
    assert align_curves(metrics, times, "loss") == {"a": ([1.0, 3.0], [3.0, 2.0]), "b": ([1.0, 2.0], [4.0, 3.5])}
    assert align_curves(metrics, times, "loss", "seconds") == {"a": ([0.5, 1.5], [3.0, 2.0]),
                                                               "b": ([2.0, 4.0], [4.0, 3.5])}
    assert align_curves(metrics, times, "knn_top1", "seconds") == {"a": ([0.0, 1.5], [10.0, 30.0])}
    with pytest.raises(ValueError, match="x must be"):
        align_curves(metrics, times, "loss", "epoch")


def test_race_configs_share_conditions_and_give_mae_a_vit():
    base = RunConfig(dataset="digits", backbone="convnet", max_seconds=30.0, seed=3, options={"temperature": 0.2})
    configs = race_configs(["simclr", "mae"], base)
    assert [c.method for c in configs] == ["simclr", "mae"]
    assert [c.backbone for c in configs] == ["convnet", DEFAULT_VIT]
    assert all((c.dataset, c.max_seconds, c.seed, c.options) == ("digits", 30.0, 3, {}) for c in configs)
    vit = race_configs(["mae"], RunConfig(backbone="vit_small"))
    assert vit[0].backbone == "vit_small"
    assert backbones_for("mae") == ["vit_small", "vit_tiny"] and "convnet" in backbones_for("simclr")
    for bad, match in (([], "at least one"), (["simclr", "simclr"], "once"), (["nope"], "unknown")):
        with pytest.raises(ValueError, match=match):
            race_configs(bad, base)


def test_races_group_runs_and_lanes_measure_progress():
    runs = [record("r2", group="race-2", created=5.0, status="running", max_seconds=10.0),
            record("x", group="sweep", created=4.0),
            record("r1b", group="race-1", created=2.0, method="byol"),
            record("r1a", group="race-1", created=1.0),
            record("loose", created=0.5)]
    found = races(runs)
    assert [r.group_id for r in found] == ["race-2", "race-1"]  # newest first; other groups ignored
    assert [r.id for r in found[1].runs] == ["r1a", "r1b"] and not found[1].active and found[0].active
    live = lane(runs[0], {"loss": ([1, 2, 3], [5.0, 4.0, 3.0]), "knn_top1": ([0, 3], [10.0, float("nan")])},
                {1: 1.0, 2: 2.0, 3: 2.5})
    assert (live.step, live.seconds, live.progress, live.knn, live.knn_random_init) == (3, 2.5, 0.25, 10.0, 20.0)
    by_steps = lane(record("s", status="running", steps=10, max_seconds=None), {"loss": ([4], [1.0])}, {4: 100.0})
    assert by_steps.progress == pytest.approx(0.4)
    done = lane(record("d", steps=10, max_seconds=None), {"loss": ([7], [1.0])}, {7: 1.0})
    assert done.progress == 1.0  # a finished run fills its lane even when it stopped early on time


def tiny_run(store: RunStore, method: str, **overrides) -> str:
    cfg = RunConfig(method=method, dataset="shapes", steps=2, batch_size=16, train_size=64, knn_bank=50,
                    knn_test=50, knn_every_seconds=1e9, **overrides).with_dataset_defaults()
    run_id = store.create(asdict(cfg))
    execute(cfg, store, run_id, log=lambda s: None)
    return run_id


def test_embed_runs_projects_every_run_on_the_same_images():
    store = RunStore()
    ids = [tiny_run(store, "simclr"), tiny_run(store, "byol", image_size=24)]
    emb = embed_runs(store, ids, "shapes", n=200)
    assert emb.labels.shape == (200,) and len(emb.classes) == 10
    assert torch.bincount(emb.labels).tolist() == [20] * 10  # stratified: the classes stay balanced
    assert set(emb.coords) == set(ids)
    for xy in emb.coords.values():
        assert xy.shape == (200, 2) and torch.isfinite(xy).all()
        assert xy.mean(0).abs().max() < 1e-4  # PCA coordinates are centred
    assert not torch.allclose(emb.coords[ids[0]], emb.coords[ids[1]])


def wait_done(store: RunStore, run_ids: list[str], timeout: float = 120) -> list[RunRecord]:
    deadline = time.time() + timeout
    while True:
        records = [store.get(i) for i in run_ids]
        if all(r.status in DONE for r in records):
            return records
        assert time.time() < deadline, [(r.id, r.status) for r in records]
        time.sleep(0.5)


def test_launch_race_queues_one_group_that_the_dispatcher_trains():
    store = RunStore()
    configs = race_configs(["simclr", "byol"], RunConfig(steps=2, batch_size=16, train_size=64, knn_bank=50,
                                                         knn_test=50))
    group_id, run_ids = launch_race(configs, store)
    records = [store.get(i) for i in run_ids]
    assert group_id.startswith("race-") and {r.group_id for r in records} == {group_id}
    assert [r.id for r in races(store.list())[0].runs] == run_ids
    # One slot on this machine: the queue trains them one after another, in the order they were queued.
    records = wait_done(store, run_ids)
    assert [r.status for r in records] == ["finished", "finished"], [r.error for r in records]
    assert records[0].started < records[1].started and records[0].ended <= records[1].started + 1.0


@pytest.fixture
def at():
    return open_app("views/compare.py")


def test_compare_page_without_runs(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("No runs yet" in i.value for i in at.info) and any("No races yet" in i.value for i in at.info)


def test_compare_page_with_two_finished_runs(at):
    store = RunStore()
    ids = [tiny_run(store, "simclr"), tiny_run(store, "byol", backbone="convnet_fullres")]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert sorted(table["run"]) == sorted(ids)
    assert table["k"].tolist() == [20, 20] and table["bank"].tolist() == [50, 50]
    assert all("backbone" in f for f in table["fairness"])  # a tie: both runs carry the flag
    assert any("backbone" in w.value for w in at.warning)
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # loss, kNN, embeddings
    at.radio(key="compare_x").set_value("seconds").run()
    assert not at.exception


def test_race_form_launches_one_group(at):
    at.run()
    at.multiselect(key="race_methods").set_value(["simclr", "byol"])
    at.radio(key="race_bk").set_value("steps")
    at.number_input(key="race_budget").set_value(2)
    at.select_slider(key="race_bs").set_value(16)
    next(b for b in at.button if b.label == "Start the race").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    store = RunStore()
    records = store.list()
    for r in records:
        cancel(store, r.id, OPERATOR)  # the test needs the queue, not the training
    assert sorted(r.method for r in records) == ["byol", "simclr"]
    assert len({r.group_id for r in records}) == 1 and records[0].group_id.startswith("race-")
    assert {r.config["steps"] for r in records} == {2} and {r.config["batch_size"] for r in records} == {16}
    wait_done(store, [r.id for r in records])
    at.run()
    assert not at.exception
    assert at.selectbox(key="race_pick").value == records[0].group_id
    assert len(at.get("progress")) == 2
    assert len(at.dataframe) == 2  # the race's result table, and the Compare tab preselects the race
    assert sorted(at.dataframe[1].value["run"]) == sorted(r.id for r in records)
    # A second race becomes the one shown, and the first stays in the history.
    at.multiselect(key="race_methods").set_value(["moco"])
    next(b for b in at.button if b.label == "Start the race").click()
    at.run()
    (second,) = [r for r in store.list() if r.group_id != records[0].group_id]
    cancel(store, second.id, OPERATOR)
    assert at.selectbox(key="race_pick").value == second.group_id
    assert at.selectbox(key="race_pick").options[1].startswith(time.strftime("%Y"))  # described, not raw ids
    wait_done(store, [second.id])
