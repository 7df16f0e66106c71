"""What defines a run: a frozen, JSON-serialisable config, and the defaults it takes per dataset and method."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from sslcore.methods import METHODS
from sslcore.models import BACKBONES
from sslcore.train import OptimConfig

# Methods whose architecture needs patch tokens (MAE masks and drops them): they default to a ViT.
VIT_ONLY_METHODS = frozenset({"mae"})
DEFAULT_VIT = "vit_tiny"

# On ``shapes`` the object fills only part of the frame: crops below 40% of the image often miss it,
# and its flat colour is an easy shortcut that only strong colour distortion removes. Views of 20 px
# (of 32 px images) buy 1.9x the steps in a time budget; features are read at full size (train low,
# test high: Touvron et al. 2019, FixRes). Measured on 60 s SimCLR runs, batch 128, T=0.1: kNN
# +32.7 points over random init (24.3% -> 57.0%); rotating the views as well gave +28.2.
DATASET_VIEW_DEFAULTS: dict[str, dict[str, Any]] = {
    "shapes": {"crop_scale": [0.4, 1.0], "color_strength": 1.5, "view_scale": 0.625},
}


@dataclass(frozen=True)
class DefaultRun:
    """A method's default run: what the Train page and ``sslcore train`` use for what the user leaves
    unset, and, on ``shapes``, what the starter pack's reference run trained.

    Attributes:
        steps, max_seconds: the budget (on shapes in steps: they mean the same on every CPU, seconds do not).
        image_size: the size the images are drawn or resized to.
        batch_size: images per step.
        options: method options that belong to this image size (filled in where the user set none).
    """

    steps: int | None = None
    max_seconds: float | None = None
    image_size: int = 32
    batch_size: int = 128
    options: dict[str, Any] = field(default_factory=dict)


# Each method's default run on ``shapes``: at most 5 minutes of training on a 2-core CPU with bf16,
# after which its standard kNN beats random init by 5 points or more (benchmarks/README.md has every
# run's seconds and gain; colorization has nothing to learn on shapes, by design). Jigsaw and
# relative position draw ``shapes`` at 64 px and feed their 16 px tiles to the backbone unresized: at
# 32 px their tiles were magnified 2x, the backbone learned shapes at twice the size the 32 px
# readout shows them, and their kNN stayed at random init (+2.4 and -4.6; at 64 px +9.3 and +7.0).
# MAE needs steps more than images per step: batch 64 doubles the steps in its time (1,500 steps of
# batch 64: +5.7 in 266 s, 2,000: +7.3 in 342 s; 600 of batch 128: +0.7).
DEFAULT_RUNS: dict[str, DefaultRun] = {
    "simclr": DefaultRun(1200), "moco": DefaultRun(1600), "byol": DefaultRun(800), "dino": DefaultRun(800),
    "mae": DefaultRun(1500, batch_size=64), "rotation": DefaultRun(400), "colorization": DefaultRun(450),
    "inpainting": DefaultRun(850),
    "jigsaw": DefaultRun(400, image_size=64, options={"tile_resize": 0.25}),
    "relpos": DefaultRun(1500, image_size=64, options={"patch_resize": 0.25}),
}
ELSEWHERE = DefaultRun(max_seconds=60.0)  # on other datasets, every method


def default_run(method: str, dataset: str) -> DefaultRun:
    """``method``'s default run on ``dataset``: its :data:`DEFAULT_RUNS` entry on shapes, else 60 s at 32 px."""
    return DEFAULT_RUNS.get(method, ELSEWHERE) if dataset == "shapes" else ELSEWHERE


def describe_default_run(method: str) -> str:
    """One line for the Train form: ``method``'s default run on shapes, and which options come with it."""
    run = default_run(method, "shapes")
    options = ", ".join(f"{k} {v}" for k, v in run.options.items())
    return (f"Default: {method}'s run on shapes, {run.steps} steps of {run.batch_size} images at {run.image_size} px"
            + (f" ({options}, unless you change them)" if options else "") + ", as its reference run in Runs.")


def backbones_for(method: str) -> list[str]:
    """The backbones ``method`` can train, sorted: the ViTs alone for :data:`VIT_ONLY_METHODS`."""
    return sorted(b for b in BACKBONES if method not in VIT_ONLY_METHODS or b.startswith("vit"))


def default_backbone(method: str) -> str:
    """``convnet``, or :data:`DEFAULT_VIT` for a method that needs a ViT (the Train page's choice too)."""
    return DEFAULT_VIT if method in VIT_ONLY_METHODS else "convnet"


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; stored as the run's ``config.json``."""

    method: str = "simclr"
    dataset: str = "shapes"
    data_dir: str | None = None
    eval_dir: str | None = None  # labelled folder for the kNN monitor; default: a split of the data
    backbone: str = "convnet"
    image_size: int = 32
    batch_size: int = 128
    steps: int | None = None
    max_seconds: float | None = 60.0  # training seconds; evaluation pauses the clock
    seed: int = 0
    train_size: int | None = None  # cap on training images (None: the whole split)
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05
    precision: str = "auto"  # bf16 autocast where the CPU/GPU has native bf16
    device: str = "auto"
    knn_k: int = 20
    knn_t: float = 0.1
    knn_bank: int = 5000
    knn_test: int = 1000
    knn_every_seconds: float = 10.0
    # Also score every stage of the backbone at each check (sslcore.stages), from the same forward pass.
    knn_stages: bool = True
    # Wall-clock seconds between resumable train states (weights, optimiser, step, clock): a worker
    # killed at any moment loses at most this much training.
    checkpoint_every_seconds: float = 30.0
    options: dict[str, Any] = field(default_factory=dict)  # method config overrides

    def __post_init__(self) -> None:
        if self.steps is None and self.max_seconds is None:
            raise ValueError("a run needs a budget: steps or max_seconds")
        if self.batch_size < 2:
            raise ValueError("batch size must be at least 2")
        if min(self.knn_k, self.knn_bank, self.knn_test) < 1 or self.knn_t <= 0 or self.knn_every_seconds <= 0:
            raise ValueError(f"the kNN monitor needs k, bank and test of at least 1 and a positive T and interval, got "
                             f"k={self.knn_k}, T={self.knn_t}, bank={self.knn_bank}, test={self.knn_test}, "
                             f"every {self.knn_every_seconds} s")
        if self.checkpoint_every_seconds <= 0:
            raise ValueError(f"checkpoint interval must be positive, got {self.checkpoint_every_seconds}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_dataset_defaults(self) -> "RunConfig":
        """This config with the dataset's recommended view options filled in where the user set none, and
        the options of the method's default run (:data:`DEFAULT_RUNS`) when it trains at that run's size.

        Stored in the run's config, so the recipe a run trained with is always on record.
        """
        fields_of_method = {f.name for f in fields(METHODS[self.method].Config)} if self.method in METHODS else set()
        defaults = {k: v for k, v in DATASET_VIEW_DEFAULTS.get(self.dataset, {}).items() if k in fields_of_method}
        run = default_run(self.method, self.dataset)
        if run.image_size == self.image_size:  # its options belong to its image size
            defaults.update(run.options)
        return replace(self, options={**defaults, **self.options})

    def optim(self) -> OptimConfig:
        return OptimConfig(name=self.optimizer, lr=self.lr, weight_decay=self.weight_decay, warmup=self.warmup)
