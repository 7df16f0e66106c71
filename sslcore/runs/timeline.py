"""A run's timeline: the weights the viewers read, kept at a few points of training, to scrub through.

At the start (random init) and at 10%, 25% and 50% of the budget a run keeps what the Embeddings,
DINO attention and MAE pages load (the backbone, DINO's teacher, all of an MAE) in float16 under
``timeline/step-NNNNNN.safetensors``; its final checkpoint is the last point. A convnet run keeps
about 2.3 MB per point.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from sslcore.checkpoint import save_checkpoint
from sslcore.methods.base import Method
from sslcore.models.load import export_part
from sslcore.runs.config import RunConfig
from sslcore.train import TrainState

FOLDER = "timeline"
FRACTIONS = (0.1, 0.25, 0.5)
PARTIAL_KEY = "partial"  # checkpoint metadata: the state-dict prefixes it keeps (the rest is rebuilt at init)


def kept_prefixes(method: str) -> list[str]:
    """What the viewers read of a run of ``method``: its backbone and what its page shows."""
    prefix = export_part(method)[1]
    return [""] if prefix == "" else sorted({"backbone.", prefix})


def path_at(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / FOLDER / f"step-{step:06d}.safetensors"


def steps(run_dir: str | Path) -> list[int]:
    """The steps a run kept on its timeline, in order (its final checkpoint not included)."""
    folder = Path(run_dir) / FOLDER
    return sorted(int(p.stem.removeprefix("step-")) for p in folder.glob("step-*.safetensors")) if folder.is_dir() else []


def keep(run_dir: Path, method: Method, cfg: RunConfig, step: int, progress: float) -> Path:
    """Save the viewers' part of ``method`` at ``step`` onto the run's timeline."""
    prefixes = kept_prefixes(cfg.method)
    state = {k: v for k, v in method.state_dict().items() if any(k.startswith(p) for p in prefixes)}
    meta: dict[str, Any] = {"config": asdict(cfg), "summary": {"steps": step, "progress": round(progress, 4)},
                            "format": "sslcore-method-v1", PARTIAL_KEY: prefixes}
    return save_checkpoint(path_at(run_dir, step), state, meta, dtype=torch.float16)


class TimelineMonitor:
    """Keeps a timeline point each time training passes one of ``fractions`` of its budget."""

    def __init__(self, run_dir: Path, cfg: RunConfig, start_progress: float = 0.0,
                 fractions: tuple[float, ...] = FRACTIONS) -> None:
        self.run_dir, self.cfg = run_dir, cfg
        self.pending = [f for f in fractions if f > start_progress]

    def on_step(self, state: TrainState, method: Method) -> None:
        if self.pending and state.progress >= self.pending[0]:
            while self.pending and state.progress >= self.pending[0]:
                self.pending.pop(0)
            keep(self.run_dir, method, self.cfg, state.step, state.progress)
