"""Every method visibly learns in its default run on shapes (sslcore.runs.config.DEFAULT_RUNS).

The default run is what the Train page and ``sslcore train`` start when given no budget, and what the
starter pack's reference run trained: its standard kNN must beat the same network at random init by
5 points or more. Colorization is the exception by design (``shapes`` draws colour independently of
the class; its panel says so, sslcore.readings).
"""

import shlex
from dataclasses import asdict, replace

import pytest

from sslcore.cli import build_parser, config_from_args
from sslcore.export import train_command
from sslcore.runs import RunConfig, RunStore
from sslcore.runs import starter
from sslcore.runs.config import DEFAULT_RUNS
from sslcore.runs.execute import execute

MIN_GAIN = 5.0
LEARNS_NOTHING_HERE = {"colorization"}
# Minutes-long on 2 cores: `make test-long` trains them; CI trains jigsaw's (about 90 s).
FAST = {"jigsaw"}


def gain(summary: dict) -> float:
    return summary["knn_top1"] - summary["knn_top1_random_init"]


def cli_config(*argv: str) -> RunConfig:
    return config_from_args(build_parser().parse_args(["train", *argv]), "train")


def test_sslcore_train_without_settings_trains_the_default_run():
    assert cli_config("--method", "jigsaw") == starter.pack_config("jigsaw")
    assert cli_config("--method", "jigsaw").options == {"crop_scale": [0.4, 1.0], "tile_resize": 0.25}
    mae = cli_config("--method", "mae")
    assert (mae.backbone, mae.batch_size, mae.steps, mae.max_seconds) == ("vit_tiny", 64, 1500, None)
    # The default run's options belong to its image size: at 32 px jigsaw's tiles keep the method's default.
    assert "tile_resize" not in cli_config("--method", "jigsaw", "--image-size", "32").options
    assert cli_config("--method", "jigsaw", "--option", "tile_resize=0.5").options["tile_resize"] == 0.5
    # Elsewhere: 60 s at 32 px, batch 128, whatever the method.
    digits = cli_config("--method", "jigsaw", "--dataset", "digits")
    assert (digits.image_size, digits.batch_size, digits.steps, digits.max_seconds) == (32, 128, None, 60.0)
    assert "tile_resize" not in digits.options
    # The pack's provenance command reproduces the run it names.
    for method in ("relpos", "mae"):
        assert cli_config(*shlex.split(train_command(starter.pack_config(method)))[2:]) == starter.pack_config(method)


def test_every_reference_run_in_the_pack_gained_five_points():
    pack = starter.read_pack()
    assert pack is not None, "assets/starter/pack.json is missing: run `make starter-pack`"
    gains = {r["method"]: r["knn_top1"] - r["knn_top1_random_init"] for r in pack["runs"]}
    low = {m: round(g, 1) for m, g in gains.items() if g < MIN_GAIN and m not in LEARNS_NOTHING_HERE}
    assert not low, f"default runs below +{MIN_GAIN} kNN points: {low}"


@pytest.mark.slow
@pytest.mark.parametrize("method", [pytest.param(m, marks=[] if m in FAST else [pytest.mark.long])
                                    for m in sorted(DEFAULT_RUNS) if m not in LEARNS_NOTHING_HERE])
def test_the_default_run_beats_random_init_by_five_points(tmp_path, method):
    # The default run as the pack trained it, without the kNN checks along the way (they pause the training
    # clock and change no weight): only the final kNN is asserted.
    cfg = replace(starter.pack_config(method), knn_every_seconds=1e9, knn_stages=False)
    store = RunStore(tmp_path)
    summary = execute(cfg, store, store.create(asdict(cfg)), log=lambda s: None)
    assert summary["steps"] == DEFAULT_RUNS[method].steps and summary["image_size"] == DEFAULT_RUNS[method].image_size
    assert gain(summary) >= MIN_GAIN, (f"{method}: kNN {summary['knn_top1']:.1f} against random init "
                                       f"{summary['knn_top1_random_init']:.1f}")
