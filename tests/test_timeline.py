"""A run's timeline: the viewers' weights kept at the start and at 10/25/50% of the budget."""

from dataclasses import asdict

import torch

from sslcore.runs import RunConfig, RunStore
from sslcore.runs.build import build_method
from sslcore.runs.execute import execute
from sslcore.runs.saved import from_run, load_run
from sslcore.runs.timeline import kept_prefixes, steps

TINY = dict(steps=20, max_seconds=None, batch_size=16, train_size=128, knn_bank=50, knn_test=50)


def test_timeline_points_load_and_start_at_random_init(tmp_path):
    store = RunStore(tmp_path)
    cfg = RunConfig(method="simclr", **TINY)
    run_id = store.create(asdict(cfg))
    execute(cfg, store, run_id, log=lambda s: None)
    run_dir = store.run_dir(run_id)
    assert steps(run_dir) == [0, 2, 5, 10]
    init = build_method(cfg, torch.device("cpu")).backbone.state_dict()
    first, _ = load_run(run_dir, step=0)
    assert all(torch.allclose(first.backbone.state_dict()[k].float(), v.float(), atol=1e-3, rtol=1e-3)
               for k, v in init.items() if v.is_floating_point())  # fp16 of the random init
    middle, _ = load_run(run_dir, step=10)
    final, _ = load_run(run_dir)
    weight = next(k for k, v in init.items() if v.dim() == 4)
    moved = [(m.backbone.state_dict()[weight].float() - init[weight]).norm().item() for m in (first, middle, final)]
    assert moved[0] < 1e-2 < moved[1] < moved[2]  # the weights travel away from init along the timeline


def test_dino_keeps_its_teacher_and_mae_everything():
    assert kept_prefixes("dino") == ["backbone.", "teacher_backbone."]
    assert kept_prefixes("simclr") == ["backbone."]
    assert kept_prefixes("mae") == [""]


def test_a_vit_run_shows_its_teacher_at_any_point(tmp_path):
    store = RunStore(tmp_path)
    cfg = RunConfig(method="dino", backbone="vit_tiny", **TINY)
    run_id = store.create(asdict(cfg))
    execute(cfg, store, run_id, log=lambda s: None)
    loaded = from_run(store.run_dir(run_id), step=5)
    assert loaded.kind == "vit" and "step 5" in loaded.source
