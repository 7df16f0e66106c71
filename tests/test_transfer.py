"""The transfer planner's engine: a tiny real run transferred to a small labelled folder, the four
approaches at each label fraction, the reading of the numbers, and the cross-domain flag."""

import random
import re
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from sslcore.eval import FineTuneConfig, percent
from sslcore.runs import RunConfig, RunStore
from sslcore.runs.execute import execute
from sslcore.transfer import (APPROACHES, SAY, XRAY_SITUATION, Domain, TransferPlan, TransferResult, TransferRow,
                              evaluate_plan, is_cross_domain, reading)

TINY = dict(steps=20, max_seconds=None, batch_size=16, train_size=128, knn_bank=50, knn_test=50)
QUICK_FT = FineTuneConfig(epochs=2, batch_size=16)
COLOURS = {"blue": (40, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}


def labelled_folder(root: Path, per_class: int = 20) -> Path:
    """root/<colour>/*.png: 32x32 coloured squares and circles on dark noise-free backgrounds."""
    rng = random.Random(0)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = Image.new("RGB", (32, 32), tuple(rng.randrange(0, 60) for _ in range(3)))
            x, y, r = rng.randrange(8, 24), rng.randrange(8, 24), rng.randrange(4, 7)
            draw = ImageDraw.Draw(img)
            (draw.ellipse if i % 2 else draw.rectangle)((x - r, y - r, x + r, y + r), fill=colour)
            img.save(root / name / f"{i:02d}.png")
    return root


def tiny_run(store: RunStore, **overrides) -> Path:
    cfg = RunConfig(method="simclr", **{**TINY, **overrides})
    run_id = store.create(asdict(cfg))
    execute(cfg, store, run_id, log=lambda s: None)
    return store.run_dir(run_id)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny SimCLR run on shapes, a 3-class labelled folder, and the transfer of one to the other."""
    root = tmp_path_factory.mktemp("transfer")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLCORE_HOME", str(root / "home"))
        torch.set_num_threads(1)  # L-BFGS probes on tiny problems are many times faster on one thread
        try:
            run_dir = tiny_run(RunStore(root / "runs"))
            folder = labelled_folder(root / "colours")
            plan = TransferPlan(str(run_dir), "folder", data_dir=str(folder), fractions=(1.0, 0.25), labelled=200,
                                test=100, finetune=QUICK_FT)
            seen: list[float] = []
            result = evaluate_plan(plan, progress=seen.append)
        finally:
            torch.set_num_threads(threads)
    return {"run_dir": run_dir, "folder": folder, "plan": plan, "result": result, "progress": seen}


def test_the_plan_scores_every_approach_at_each_fraction(world):
    result: TransferResult = world["result"]
    assert result.plan.fractions == (0.25, 1.0)  # sorted
    assert result.fractions == (0.25, 1.0)
    assert [(r.approach, r.fraction) for r in result.rows] == [(a, f) for f in (0.25, 1.0) for a in APPROACHES]
    assert all(0 <= r.top1 <= 100 for r in result.rows)
    # An 80/20 stratified split keeps 16 of each class's 20 images for training: 12 labels at 25%, 48 at 100%.
    assert {r.fraction: r.labels for r in result.rows} == {0.25: 12, 1.0: 48}
    # The test split has 12 images: every score is a whole number of them.
    assert all(abs(r.top1 * 12 / 100 - round(r.top1 * 12 / 100)) < 1e-3 for r in result.rows)
    protocols = {r.approach: r.protocol for r in result.rows if r.fraction == 1.0}
    assert protocols["probe"].startswith("linear probe") and protocols["random"].startswith("linear probe")
    assert protocols["scratch"].startswith("supervised reference") and "20 steps" in protocols["scratch"]
    assert protocols["finetune"].startswith("fine-tuning") and "2 epochs" in protocols["finetune"]
    steps = {(r.approach, r.fraction): r.steps for r in result.rows}
    # From scratch: the run's 20 steps; fine-tuning: 2 epochs of the labelled images in batches of 16.
    assert steps == {("scratch", 0.25): 20, ("scratch", 1.0): 20, ("finetune", 0.25): 2, ("finetune", 1.0): 6,
                     ("probe", 0.25): None, ("probe", 1.0): None, ("random", 0.25): None, ("random", 1.0): None}
    assert result.steps == 20
    progress = world["progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_the_table_reads_across_and_names_the_winner(world):
    result = world["result"]
    table = result.table()
    assert [row["labels"] for row in table] == ["25% (12 images)", "100% (48 images)"]
    for row, f in zip(table, (0.25, 1.0)):
        values = {a: row[f"{name} %"] for a, name in APPROACHES.items()}
        assert values == {a: round(result.get(a, f).top1, 1) for a in APPROACHES}
        top = max(values.values())
        assert row["best"] == " = ".join(APPROACHES[a] for a in APPROACHES if values[a] == top)


def test_the_reading_names_the_best_approach_at_each_fraction(world):
    result = world["result"]
    lines = reading(result)
    for f in result.fractions:
        line = next(x for x in lines if x.startswith(f"With {percent(f)} of the labels ({result.labels(f)} images)"))
        values = {a: round(result.get(a, f).top1, 1) for a in APPROACHES}
        top = max(values.values())
        best = [a for a in APPROACHES if values[a] == top]
        assert f"{top:.1f}%" in line
        if len(best) < len(APPROACHES):
            winners = line.split(" best at ")[0]
            assert all(SAY[a] in winners for a in best), (line, best)
            assert not any(SAY[a] in winners for a in APPROACHES if a not in best), (line, best)
            runner_up = max(v for v in values.values() if v < top)
            assert f"{top - runner_up:.1f} points ahead" in line


def test_a_probe_on_other_images_is_cross_domain_and_compared_with_home(world):
    result = world["result"]
    assert result.cross_domain and result.plan.cross_domain
    assert result.pretrained_on == "shapes" and result.probed_on == "the folder 'colours'"
    # The run's own data (shapes) is probed too, frozen features only, with the same fractions.
    assert [(r.approach, r.fraction) for r in result.home] == [("probe", 0.25), ("random", 0.25), ("probe", 1.0),
                                                                ("random", 1.0)]
    assert {r.fraction: r.labels for r in result.home} == {0.25: 50, 1.0: 200}  # of the 200 labelled shapes
    lines = reading(result)
    assert lines[0].startswith("Cross-domain: the backbone was pretrained on shapes and is tested on the folder "
                               "'colours'")
    home_gain = result.top1("probe", 1.0, home=True) - result.top1("random", 1.0, home=True)
    away_gain = result.top1("probe", 1.0) - result.top1("random", 1.0)
    gap = next(x for x in lines if x.startswith("Same backbone, same 100% of the labels"))
    assert f"on its own data (shapes) the linear probe gains {home_gain:+.1f} points" in gap
    assert f"on the folder 'colours' {away_gain:+.1f}." in gap
    rows = result.domain_table()
    assert [(r["labels"], r["data"]) for r in rows] == [
        ("25% (50 images)", "shapes"), ("25% (12 images)", "the folder 'colours'"),
        ("100% (200 images)", "shapes"), ("100% (48 images)", "the folder 'colours'")]
    assert all(r["gain (points)"] == round(r["linear probe %"] - r["random init %"], 1) for r in rows)


def test_the_same_kind_of_image_is_not_cross_domain(world, tmp_path):
    torch.set_num_threads(1)  # restored by conftest
    plan = replace(world["plan"], dataset="shapes", data_dir=None, fractions=(1.0,), labelled=60, test=30)
    assert not plan.cross_domain
    result = evaluate_plan(plan)
    assert not result.cross_domain and result.home == ()
    assert [r.approach for r in result.rows] == list(APPROACHES)
    assert not any(line.startswith(("Cross-domain", "Same backbone")) for line in reading(result))


def test_cross_domain_flag():
    shapes = RunConfig(dataset="shapes")
    assert not is_cross_domain(shapes, Domain("shapes"))
    assert is_cross_domain(shapes, Domain("digits"))
    assert is_cross_domain(shapes, Domain("folder", "/data/cifar10"))
    folder = RunConfig(dataset="folder", data_dir="/data/xrays/unlabelled", eval_dir="/data/xrays/labelled")
    assert not is_cross_domain(folder, Domain("folder", "/data/xrays/unlabelled/"))
    assert not is_cross_domain(folder, Domain("folder", "/data/xrays/labelled"))  # its own labelled eval folder
    assert is_cross_domain(folder, Domain("folder", "/data/cifar10"))
    assert is_cross_domain(folder, Domain("shapes"))


def made_up(scores: dict[float, dict[str, float]], home: dict[float, dict[str, float]] | None = None,
            cross: bool = False) -> TransferResult:
    labels = {0.01: 20, 0.1: 200, 1.0: 2000}
    rows = tuple(TransferRow(a, f, labels[f], v, "") for f, by in scores.items() for a, v in by.items())
    home_rows = tuple(TransferRow(a, f, labels[f], v, "") for f, by in (home or {}).items() for a, v in by.items())
    plan = TransferPlan("unused", fractions=tuple(scores))
    return TransferResult(plan, "shapes", "digits" if cross else "shapes", cross, 100, rows, home_rows)


def test_reading_of_a_textbook_result():
    result = made_up({0.01: {"finetune": 62.0, "probe": 57.5, "scratch": 41.0, "random": 30.04},
                      1.0: {"finetune": 91.0, "probe": 80.0, "scratch": 89.0, "random": 50.0}})
    lines = reading(result)
    assert lines[0] == ("With 1% of the labels (20 images): fine-tuning the pretrained backbone is best at 62.0%, "
                        "4.5 points ahead of a linear probe on the pretrained features (57.5%) and 21.0 points ahead "
                        "of the network trained from scratch (41.0%).")
    assert lines[1] == ("With 100% of the labels (2000 images): fine-tuning the pretrained backbone is best at 91.0%, "
                        "2.0 points ahead of the network trained from scratch (89.0%).")
    assert lines[2].startswith("Frozen, the pretrained features score +27.5 to +30.0 points against the same network")
    assert lines[3] == ("The best pretrained score minus training from scratch: +21.0 points with 20 labelled images, "
                        "+2.0 with 2000. The head start is largest when labels are scarce, as the X-ray case "
                        "predicts.")


def test_reading_of_ties_and_of_a_pretraining_that_did_not_help():
    result = made_up({0.1: {"finetune": 70.0, "probe": 58.0, "scratch": 70.04, "random": 58.0},
                      1.0: {"finetune": 75.0, "probe": 60.0, "scratch": 80.0, "random": 60.0}})
    assert result.best(0.1) == ["finetune", "scratch"]  # equal at one decimal, as the table shows them
    lines = reading(result)
    assert lines[0].startswith("With 10% of the labels (200 images): fine-tuning the pretrained backbone and the "
                               "network trained from scratch tie for best at 70.0%, 12.0 points ahead of a linear "
                               "probe on the pretrained features (58.0%)")
    assert lines[1].startswith("With 100% of the labels (2000 images): the network trained from scratch is best")
    assert lines[2].startswith("Frozen, the pretrained features do no better than random ones (+0.0 points)")
    assert "Training from scratch is never behind here" in lines[3]


def test_reading_of_the_domain_gap():
    result = made_up({1.0: {"finetune": 60.0, "probe": 50.0, "scratch": 55.0, "random": 45.0}},
                     home={1.0: {"probe": 70.0, "random": 40.0}}, cross=True)
    lines = reading(result)
    assert lines[0].startswith("Cross-domain: the backbone was pretrained on shapes and is tested on digits")
    assert lines[-1] == ("Same backbone, same 100% of the labels: on its own data (shapes) the linear probe gains "
                         "+30.0 points over random init, on digits +5.0. The smaller gain away from home is the "
                         "domain gap in numbers: pretrain on unlabelled images like the ones you need to classify.")
    assert "With 2000 labelled images the pretrained backbone is 5.0 points ahead of training from scratch." in lines


def test_plan_validation():
    with pytest.raises(ValueError, match="label fractions"):
        TransferPlan("run", fractions=(0.0, 1.0))
    with pytest.raises(ValueError, match="label fractions"):
        TransferPlan("run", fractions=())
    with pytest.raises(ValueError, match="needs the labelled folder"):
        TransferPlan("run", dataset="folder")
    with pytest.raises(ValueError, match="unknown dataset"):
        TransferPlan("run", dataset="xrays")
    assert TransferPlan("run", fractions=(1.0, 0.1, 0.1)).fractions == (0.1, 1.0)


def test_the_worked_example_states_the_case():
    assert re.search(r"5,000,000 chest X-rays", XRAY_SITUATION) and "2,000 scans" in XRAY_SITUATION


def test_reading_flags_a_fine_tune_below_its_own_probe():
    rows = (TransferRow("finetune", 1.0, 1000, 46.6, "", steps=70), TransferRow("probe", 1.0, 1000, 65.4, ""),
            TransferRow("scratch", 1.0, 1000, 87.8, "", steps=1200), TransferRow("random", 1.0, 1000, 18.4, ""))
    result = TransferResult(TransferPlan("unused", fractions=(1.0,)), "shapes", "shapes", False, 1200, rows)
    assert ("Fine-tuning scored below the frozen linear probe with 100% of the labels. The probe's classifier is "
            "solved exactly, while fine-tuning trains a new head and the encoder with 70 steps, against 1200 for the "
            "network from scratch (at 100%): more fine-tuning epochs usually close the gap.") in reading(result)
    assert not any(line.startswith("Fine-tuning scored below") for line in reading(made_up(
        {1.0: {"finetune": 70.0, "probe": 60.0, "scratch": 65.0, "random": 40.0}})))
