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
    relpos = run_notes("relpos", "shapes", summary("relpos"))
    assert any(n.startswith("Its best features are not at the last stage: stage 2 gains +13.1") for n in relpos)
    jigsaw = run_notes("jigsaw", "shapes", summary("jigsaw"))
    assert any("Read at that scale (inputs 32 -> 64 px) it gains +19.6 points" in n for n in jigsaw)


def test_a_method_whose_headline_says_it_all_gets_no_note():
    assert run_notes("simclr", "shapes", summary("simclr")) == []
    assert any("MAE's frozen features" in n for n in run_notes("mae", "shapes", summary("mae")))
