"""Runs end to end: a frozen config, the data and monitors it implies, and a detached worker process.

The app and the CLI share :func:`execute`; the app starts it through :func:`launch` in a worker
process of its own, so a run survives reruns, page switches, reloads and the server itself.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from sslcore.augment import recipe
from sslcore.checkpoint import load_checkpoint, save_checkpoint
from sslcore.data import DataError, ImageSet, load_folder, load_split, stratified_split
from sslcore.eval import EvalPlan, FineTuneConfig, KNNEvaluator, Reference, evaluate, score_table, scores_json
from sslcore.methods import METHODS, create_method
from sslcore.methods.base import Method
from sslcore.models import create_backbone, is_vit
from sslcore.models.backbones import count_parameters
from sslcore.runs import RunStore, atomic_write
from sslcore.stages import has_stages, knn_by_stage, knn_with_stages, stage_protocols
from sslcore.train import NonFiniteLossError, OptimConfig, TrainState, bf16_supported, fit


# On ``shapes`` the object fills only part of the frame: crops below 40% of the image often miss it,
# and its flat colour is an easy shortcut that only strong colour distortion removes. Views of 20 px
# (of 32 px images) buy 1.9x the steps in a time budget; features are read at full size (train low,
# test high: Touvron et al. 2019, FixRes). Measured on 60 s SimCLR runs, batch 128, T=0.1: kNN
# +32.7 points over random init (24.3% -> 57.0%); rotating the views as well gave +28.2.
DATASET_VIEW_DEFAULTS: dict[str, dict[str, Any]] = {
    "shapes": {"crop_scale": [0.4, 1.0], "color_strength": 1.5, "view_scale": 0.625},
}


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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_dataset_defaults(self) -> "RunConfig":
        """This config with the dataset's recommended view options filled in where the user set none.

        Stored in the run's config, so the recipe a run trained with is always on record.
        """
        fields_of_method = {f.name for f in fields(METHODS[self.method].Config)} if self.method in METHODS else set()
        defaults = {k: v for k, v in DATASET_VIEW_DEFAULTS.get(self.dataset, {}).items() if k in fields_of_method}
        return replace(self, options={**defaults, **self.options})

    def optim(self) -> OptimConfig:
        return OptimConfig(name=self.optimizer, lr=self.lr, weight_decay=self.weight_decay, warmup=self.warmup)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_data(cfg: RunConfig) -> tuple[ImageSet, ImageSet | None]:
    """Training images and the held-out labelled set for kNN (None when there are no labels).

    A folder with an explicit ``eval_dir`` trains on the whole folder and evaluates on ``eval_dir``;
    otherwise each dataset's own train/test split is used.
    """
    if cfg.dataset == "folder" and cfg.eval_dir:
        if cfg.data_dir is None:
            raise DataError("the folder dataset needs a data directory (--data-dir)")
        train = load_folder(cfg.data_dir, cfg.image_size, max_images=cfg.train_size, seed=cfg.seed)
        test = load_folder(cfg.eval_dir, cfg.image_size)
    else:
        train = load_split(cfg.dataset, "train", cfg.image_size, data_dir=cfg.data_dir, seed=cfg.seed,
                           n=cfg.train_size)
        test = load_split(cfg.dataset, "test", cfg.image_size, data_dir=cfg.data_dir, seed=cfg.seed)
    return train, (test if test.labels is not None else None)


def build_method(cfg: RunConfig, device: torch.device) -> Method:
    torch.manual_seed(cfg.seed)
    backbone = create_backbone(cfg.backbone, cfg.image_size)
    method = create_method(cfg.method, backbone, cfg.image_size, **cfg.options).to(device)
    if not is_vit(backbone):
        method = method.to(memory_format=torch.channels_last)  # oneDNN/cuDNN's fastest conv layout
    return method


def make_evaluator(cfg: RunConfig, train: ImageSet, test: ImageSet | None) -> KNNEvaluator | None:
    if test is None or train.labels is None:
        return None
    bank_idx, _ = stratified_split(train.labels, min(1.0, cfg.knn_bank / len(train)), cfg.seed)
    test_idx, _ = stratified_split(test.labels, min(1.0, cfg.knn_test / len(test)), cfg.seed)
    bank, held_out = train.subset(bank_idx), test.subset(test_idx)
    return KNNEvaluator(bank.images, bank.labels, held_out.images, held_out.labels, cfg.knn_k, cfg.knn_t)


class MetricsRecorder:
    """Writes each step's scalars to the run store, batched to a few transactions per second."""

    def __init__(self, store: RunStore, run_id: str, flush_every: float = 0.25) -> None:
        self.store, self.run_id, self.flush_every = store, run_id, flush_every
        self.pending: list[tuple[int, float, dict[str, float]]] = []
        self.last_flush = 0.0

    def on_step(self, state: TrainState, method: Method) -> None:
        values = {"loss": state.loss, "lr": state.lr, "images_per_second": state.images_per_second,
                  "collapse_std": state.collapse_std, **state.logs}
        if state.step == 1 and state.embedding_dim:
            values["collapse_reference"] = state.embedding_dim ** -0.5
        self.pending.append((state.step, state.seconds, values))
        if time.monotonic() - self.last_flush >= self.flush_every or "knn_top1" in state.logs:
            self.flush()

    def flush(self) -> None:
        for step, seconds, values in self.pending:
            self.store.log_metrics(self.run_id, step, seconds, values)
        self.pending.clear()
        self.last_flush = time.monotonic()


class KNNMonitor:
    """Online kNN every ``every_seconds`` of training; adds ``knn_top1`` (in %) to the step's logs,
    and with ``stages`` each stage's top-1 as ``knn_stage_1`` (first) to ``knn_stage_n`` (last).

    Features are always extracted in fp32, so online, final and ``sslcore eval`` numbers agree.
    """

    def __init__(self, evaluator: KNNEvaluator, every_seconds: float, stages: bool = False) -> None:
        self.evaluator, self.every, self.stages = evaluator, every_seconds, stages
        self.next_at = every_seconds
        self.last_stages: list[float] = []

    def on_step(self, state: TrainState, method: Method) -> None:
        if state.seconds >= self.next_at:
            self.next_at = state.seconds + self.every
            state.logs.update(self.logs(self.measure(method)))

    def measure(self, method: Method) -> float:
        """The standard top-1 (%); with ``stages``, each stage's lands in :attr:`last_stages`."""
        if not self.stages:
            return 100 * self.evaluator(method.backbone)
        top1, self.last_stages = knn_with_stages(method.backbone, self.evaluator)
        return top1

    def logs(self, top1: float) -> dict[str, float]:
        """``top1`` and the stages measured with it, as metrics."""
        return {"knn_top1": top1, **{f"knn_stage_{i + 1}": v for i, v in enumerate(self.last_stages)}}


def train_scale_evaluator(method: Method, evaluator: KNNEvaluator) -> KNNEvaluator | None:
    """``evaluator`` on images resized by the method's :attr:`~Method.train_magnification`, when that
    differs from 1 by over 5% (patch tasks), else None."""
    scale = method.train_magnification
    return evaluator.resized(round(evaluator.bank_images.shape[-1] * scale)) if abs(scale - 1) > 0.05 else None


class PreviewMonitor:
    """Writes ``method.preview`` of fixed held-out images to ``preview.png`` every ``every_seconds``.

    The first one right after step 1, so the panel shows up at once; the step and the method's
    caption travel in the PNG's text chunks, so picture and label are replaced in one atomic write.
    """

    def __init__(self, images: Tensor, path: Path, every_seconds: float = 15.0, source: str = "held-out") -> None:
        self.images, self.path, self.every, self.source = images, path, every_seconds, source
        self.next_at = 0.0

    def on_step(self, state: TrainState, method: Method) -> None:
        if state.seconds >= self.next_at:
            self.next_at = state.seconds + self.every
            self.write(method, state.step)

    def write(self, method: Method, step: int) -> None:
        image = method.preview(self.images.to(next(method.parameters()).device))
        if image is not None:
            text = {"step": str(step), "source": self.source, "caption": method.preview_caption()}
            atomic_write(self.path, png_with_text(image, text))


def preview_images(train: ImageSet, test: ImageSet | None, n: int = 6) -> Tensor:
    """``n`` fixed images spread evenly over the held-out split (the training split when there is none)."""
    images = (test if test is not None else train).images
    return images[torch.linspace(0, len(images) - 1, min(n, len(images))).long()]


def png_with_text(image: np.ndarray, text: dict[str, str]) -> bytes:
    """An (H, W, 3) uint8 image as PNG bytes carrying ``text`` in tEXt chunks."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_preview(run_dir: str | Path) -> tuple[bytes, dict[str, str]] | None:
    """A run's ``preview.png`` bytes and its text (step, source, caption), or None when it has none."""
    from PIL import Image

    path = Path(run_dir) / "preview.png"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return data, dict(Image.open(io.BytesIO(data)).text)


def execute(cfg: RunConfig, store: RunStore, run_id: str, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``cfg`` as run ``run_id``: status, live metrics, checkpoint and summary go to ``store``."""
    store.set_status(run_id, "running", pid=os.getpid())
    run_dir = store.run_dir(run_id)
    device = resolve_device(cfg.device)
    train, test = load_data(cfg)
    method = build_method(cfg, device)
    evaluator = make_evaluator(cfg, train, test)
    recorder = MetricsRecorder(store, run_id)
    callbacks: list = [recorder]
    summary: dict[str, Any] = {
        "run_dir": str(run_dir), "method": cfg.method, "dataset": cfg.dataset, "backbone": cfg.backbone,
        "image_size": cfg.image_size, "batch_size": cfg.batch_size, "device": str(device),
        "precision": "bf16" if cfg.precision == "bf16" or (cfg.precision == "auto" and bf16_supported(device)) else "fp32",
        "parameters": count_parameters(method.backbone), "train_images": len(train),
        # Every field of the method's config, defaults included: the run's ``options`` list only what
        # was set, and a default changed in a later release must not rewrite what this run trained with.
        "method_config": asdict(method.cfg)}
    if evaluator is not None:
        stages = cfg.knn_stages and has_stages(method.backbone)
        monitor = KNNMonitor(evaluator, cfg.knn_every_seconds, stages)
        callbacks.insert(0, monitor)
        summary["knn_top1_random_init"] = monitor.measure(method)
        summary["knn_protocol"] = evaluator.protocol.to_dict()
        if stages:
            summary["knn_stages_random_init"] = monitor.last_stages
            summary["knn_stage_protocols"] = [p.to_dict() for p in stage_protocols(method.backbone, evaluator.protocol)]
        first = {**monitor.logs(summary["knn_top1_random_init"]), "knn_top1_random_init": summary["knn_top1_random_init"]}
        log(f"random-init kNN top-1: {summary['knn_top1_random_init']:.1f}% ({evaluator.protocol.describe()})")
        # Read at the start and the end only: the resized images cost several times a standard check.
        scaled_evaluator = train_scale_evaluator(method, evaluator)
        scaled = None if scaled_evaluator is None else KNNMonitor(scaled_evaluator, math.inf, stages)
        if scaled is not None:
            init = scaled.measure(method)
            summary["knn_train_scale"] = {"protocol": scaled_evaluator.protocol.to_dict(),
                                          "describe": scaled_evaluator.protocol.describe(),
                                          "random_init": init, "stages_random_init": scaled.last_stages}
            first["knn_top1_train_scale"] = init
            log(f"random-init kNN top-1 at the training scale: {init:.1f}% ({scaled_evaluator.protocol.describe()})")
        store.log_metrics(run_id, 0, 0.0, first)
    store.set_summary(run_id, summary)
    preview = None
    if type(method).preview is not Method.preview:
        preview = PreviewMonitor(preview_images(train, test), run_dir / "preview.png",
                                 source="held-out" if test is not None else "training")
        callbacks.append(preview)

    last_poll, stop_flag = 0.0, False

    def should_stop(state: TrainState) -> bool:
        nonlocal last_poll, stop_flag
        if time.monotonic() - last_poll > 0.5:
            last_poll, stop_flag = time.monotonic(), store.stop_requested(run_id)
        return stop_flag

    status, error, wall = "finished", "", time.monotonic()
    try:
        state = fit(method, train.images, batch_size=cfg.batch_size, optim=cfg.optim(), steps=cfg.steps,
                    max_seconds=cfg.max_seconds, seed=cfg.seed, precision=cfg.precision,
                    callbacks=callbacks, should_stop=should_stop)
        status = "stopped" if stop_flag else "finished"
    except NonFiniteLossError as e:
        status, error, state = "diverged", str(e), None
    except KeyboardInterrupt:
        status, error, state = "stopped", "interrupted", None
    recorder.flush()
    method.eval()
    if preview is not None and state is not None:
        preview.write(method, state.step)
    if state is not None:
        summary.update(steps=state.step, seconds=round(state.seconds, 2), loss=state.loss,
                       images_per_second=state.images_seen / max(state.seconds, 1e-9),
                       skipped_steps=state.skipped_steps)
    if evaluator is not None:
        summary["knn_top1"] = monitor.measure(method)
        if monitor.stages:
            summary["knn_stages"] = monitor.last_stages
        last = monitor.logs(summary["knn_top1"])
        log(f"final kNN top-1: {summary['knn_top1']:.1f}%")
        if scaled is not None:
            top1 = scaled.measure(method)
            summary["knn_train_scale"].update(top1=top1, stages=scaled.last_stages)
            last["knn_top1_train_scale"] = top1
            log(f"final kNN top-1 at the training scale: {top1:.1f}%")
        store.log_metrics(run_id, summary.get("steps", 0), summary.get("seconds", 0.0), last)
    summary["wall_seconds"] = round(time.monotonic() - wall, 2)
    save_checkpoint(run_dir / "checkpoint.safetensors", method.state_dict(),
                    {"config": asdict(cfg), "summary": summary, "format": "sslcore-method-v1"})
    store.set_summary(run_id, summary)
    store.export_metrics(run_id)
    store.set_status(run_id, status, error=error)
    return summary


def launch(configs: Sequence[RunConfig], store: RunStore, group_id: str = "") -> list[str]:
    """Queue ``configs`` and start one detached worker process that runs them in order."""
    run_ids = [store.create(asdict(c.with_dataset_defaults()), group_id=group_id) for c in configs]
    log_path = store.run_dir(run_ids[0]) / "worker.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sslcore", "worker", "--root", str(store.root), *run_ids],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=Path.cwd())
    for run_id in run_ids:
        store.set_status(run_id, "queued", pid=proc.pid)
    return run_ids


def work(store: RunStore, run_ids: Sequence[str]) -> None:
    """Worker entry point: run the queued ``run_ids`` one after another, recording failures."""
    torch.set_num_threads(os.cpu_count() or 1)
    for run_id in run_ids:
        record = store.get(run_id)
        if record.stop_requested:
            store.set_status(run_id, "stopped", error="stopped before it started")
            continue
        try:
            execute(RunConfig.from_dict(record.config), store, run_id)
        except Exception as e:  # noqa: BLE001 - a failure must land in the store and not end the queue
            traceback.print_exc()
            store.set_status(run_id, "failed", error=f"{type(e).__name__}: {e}")


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Method, RunConfig]:
    """Rebuild a saved run's method (backbone and heads) from its folder, in eval mode."""
    run_dir = Path(run_dir)
    state, meta = load_checkpoint(run_dir / "checkpoint.safetensors")
    if "config" not in meta:
        raise ValueError(f"{run_dir} has no run config in checkpoint.json")
    cfg = RunConfig.from_dict(meta["config"])
    method = build_method(cfg, torch.device(device))
    method.load_state_dict(state)
    return method.eval(), cfg


def run_reference(run_dir: str | Path, method: Method, cfg: RunConfig) -> Reference:
    """The run's architecture at its own random init, its views and the steps it trained for."""
    meta = json.loads((Path(run_dir) / "checkpoint.json").read_text())
    steps = meta.get("summary", {}).get("steps") or cfg.steps
    if not steps:
        raise ValueError(f"{run_dir} records no training steps to give the supervised reference")
    pipelines = method.view_pipelines()
    views = pipelines[0].cfg if pipelines else recipe("simclr", cfg.image_size)  # methods without views: SimCLR's
    device = next(method.parameters()).device
    return Reference(make_backbone=lambda: build_method(cfg, device).backbone, backbone_name=cfg.backbone,
                     views=views, steps=int(steps), batch_size=cfg.batch_size, optim=cfg.optim())


def evaluate_run(run_dir: str | Path, dataset: str, data_dir: str | None = None, eval_dir: str | None = None,
                 image_size: int | None = None, seed: int = 0, k: int = 20, t: float = 0.1,
                 bank: int = 5000, test: int = 1000, knn: bool = True, label_fractions: Sequence[float] = (),
                 random_init: bool = False, supervised: bool = False, finetune: FineTuneConfig | None = None,
                 stages: bool = False, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Scores of a saved run on ``dataset``; kNN with the same protocol as the online monitor.

    ``label_fractions`` add a linear probe per fraction of the bank's labels; ``random_init``,
    ``supervised`` and ``finetune`` add the references (see :func:`sslcore.eval.evaluate`). Every
    score comes with its protocol under ``scores``; ``table`` lays them out as rows. ``stages``
    adds the kNN of every stage of the backbone, trained and at random init, under ``stages``
    (see :mod:`sslcore.stages`).
    """
    method, cfg = load_run(run_dir)
    data_cfg = RunConfig.from_dict({**asdict(cfg), "dataset": dataset, "data_dir": data_dir, "eval_dir": eval_dir,
                                    "image_size": image_size or cfg.image_size, "seed": seed, "knn_k": k,
                                    "knn_t": t, "knn_bank": bank, "knn_test": test, "train_size": None})
    evaluator = make_evaluator(data_cfg, *load_data(data_cfg))
    if evaluator is None:
        raise ValueError(f"{dataset} has no labels to evaluate against")
    out: dict[str, Any] = {"run_dir": str(run_dir), "dataset": dataset, "steps": cfg.steps}
    if stages:
        init = build_method(cfg, next(method.parameters()).device).backbone
        out["stages"] = [s.to_dict() for s in knn_by_stage(method.backbone, evaluator)
                         + knn_by_stage(init, evaluator, model="random init")]
    if not (label_fractions or random_init or supervised or finetune):
        return {**out, "knn_top1": 100 * evaluator(method.backbone), "knn_protocol": evaluator.protocol.to_dict()}
    plan = EvalPlan(knn=evaluator.protocol if knn else None, fractions=tuple(label_fractions), random_init=random_init,
                    supervised=supervised, finetune=finetune, seed=seed)
    reference = run_reference(run_dir, method, cfg) if (random_init or supervised) else None
    scores = evaluate(method.backbone, evaluator.bank_images, evaluator.bank_labels, evaluator.test_images,
                      evaluator.test_labels, plan, reference, progress=progress)
    knn_run = [s for s in scores if (s.metric, s.model) == ("knn", "run")]
    if knn_run:
        out.update(knn_top1=knn_run[0].top1, knn_protocol=knn_run[0].protocol.to_dict())
    return {**out, "scores": scores_json(scores), "table": score_table(scores)}
