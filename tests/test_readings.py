"""Notes on what a run's headline number hides, read from real reference-run summaries."""

import json

from sslcore.readings import run_notes
from sslcore.runs.starter import pack_dir


def summary(method: str) -> dict:
    return json.loads((pack_dir() / f"ref-shapes-{method}" / "summary.json").read_text())


def test_colorization_on_shapes_says_why_it_does_not_gain():
    notes = run_notes("colorization", "shapes", summary("colorization"))
    assert any("independently of its class" in n for n in notes)
    assert not any("independently" in n for n in run_notes("colorization", "digits", summary("colorization")))


def test_a_pretext_task_points_at_its_best_stage_and_training_scale():
    # Summaries with the gains of the 32 px relpos and jigsaw default runs before 7 December 2026, whose tiles
    # were magnified 2x (benchmarks/HISTORY.md): relpos +13.1 at stage 2 and -4.6 at the last, jigsaw +19.6
    # read at the tiles' scale. What they learned sat in stage 2 and at that scale.
    relpos = {"knn_top1": 19.7, "knn_top1_random_init": 24.3, "knn_stages": [19.9, 36.6, 28.0, 19.7],
              "knn_stages_random_init": [17.8, 23.5, 24.9, 24.3]}
    assert any(n.startswith("Its best features are not at the last stage: stage 2 gains +13.1")
               for n in run_notes("relpos", "shapes", relpos))
    jigsaw = {"knn_top1": 26.7, "knn_top1_random_init": 24.3, "knn_train_scale": {
        "protocol": {"image_size": 32, "input_size": 64}, "top1": 43.0, "random_init": 23.4}}
    assert any("Read at that scale (inputs 32 -> 64 px) it gains +19.6 points" in n
               for n in run_notes("jigsaw", "shapes", jigsaw))
    # Today's default runs feed their tiles unmagnified and gain at the standard readout: no such note.
    assert not any("Read at that scale" in n for m in ("jigsaw", "relpos") for n in run_notes(m, "shapes", summary(m)))


def test_a_method_whose_headline_says_it_all_gets_no_note():
    assert run_notes("simclr", "shapes", summary("simclr")) == []
    assert run_notes("mae", "shapes", summary("mae")) == []  # +5.7 in its default run
    slow_mae = {"knn_top1": 14.9, "knn_top1_random_init": 14.2}  # 600 steps of batch 128
    assert any("MAE's frozen features" in n for n in run_notes("mae", "shapes", slow_mae))
