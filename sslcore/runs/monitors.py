"""What watches a run while it trains: live metrics, online kNN (every stage), preview pictures."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sslcore.data import ImageSet
from sslcore.eval import KNNEvaluator
from sslcore.methods.base import Method
from sslcore.paths import atomic_write
from sslcore.runs.store import RunStore
from sslcore.stages import knn_with_stages
from sslcore.train import TrainState
from sslcore.viz import previews


class MetricsRecorder:
    """Writes each step's scalars to the run store, batched to a few transactions per second."""

    def __init__(self, store: RunStore, run_id: str, flush_every: float = 0.25) -> None:
        self.store, self.run_id, self.flush_every = store, run_id, flush_every
        self.pending: list[tuple[int, float, dict[str, float]]] = []
        self.last_flush = 0.0

    def on_step(self, state: TrainState, method: Method) -> None:
        values = {"loss": state.loss, "lr": state.lr, "images_per_second": state.images_per_second,
                  "collapse_std": state.collapse_std, "effective_rank": state.effective_rank, **state.logs}
        if state.step == 1 and state.embedding_dim:
            values["collapse_reference"] = state.embedding_dim ** -0.5
        self.pending.append((state.step, state.seconds, values))
        if time.monotonic() - self.last_flush >= self.flush_every or "knn_top1" in state.logs:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.store.log_steps(self.run_id, self.pending)
        self.pending.clear()
        self.last_flush = time.monotonic()


class KNNMonitor:
    """Online kNN every ``every_seconds`` of training; adds ``knn_top1`` (in %) to the step's logs,
    and with ``stages`` each stage's top-1 as ``knn_stage_1`` (first) to ``knn_stage_n`` (last).

    Features are always extracted in fp32, so online, final and ``sslcore eval`` numbers agree.
    """

    def __init__(self, evaluator: KNNEvaluator, every_seconds: float, stages: bool = False,
                 start_seconds: float = 0.0) -> None:
        self.evaluator, self.every, self.stages = evaluator, every_seconds, stages
        self.next_at = start_seconds + every_seconds
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
    """Writes the method's :func:`~sslcore.viz.previews.preview` of fixed held-out images to ``preview.png``
    every ``every_seconds``.

    The first one right after the first step, so the panel shows up at once; the step and the method's
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
        image = previews.preview(method, self.images.to(next(method.parameters()).device))
        if image is not None:
            text = {"step": str(step), "source": self.source, "caption": previews.caption(method)}
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
