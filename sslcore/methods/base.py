"""What every method provides to the method-agnostic training loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from sslcore.augment import BatchViews


@dataclass
class StepOutput:
    """One training step's result.

    Attributes:
        loss: scalar to minimise.
        embedding: (B, D) outputs watched by the collapse monitor (the projections for joint-
            embedding methods).
        logs: method-specific diagnostics shown live (floats, already detached).
    """

    loss: Tensor
    embedding: Tensor | None = None
    logs: dict[str, float] = field(default_factory=dict)


class Method(nn.Module):
    """A self-supervised method: owns its views, heads and loss; ``backbone`` is what gets evaluated.

    Subclasses set ``name`` and ``Config`` (a frozen dataclass with CPU-sized defaults) and
    implement :meth:`training_step`. Methods with target networks override :meth:`on_step_end`.
    """

    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, backbone: nn.Module, cfg: object) -> None:
        super().__init__()
        self.backbone = backbone
        self.cfg = cfg

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        """images: (B, 3, H, W) uint8 on the training device."""
        raise NotImplementedError

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multipliers by submodule name (e.g. ``{"predictor": 10.0}``); 1 for the rest."""
        return {}

    def on_step_end(self, progress: float) -> None:
        """Called after each optimiser step with training progress in [0, 1]."""

    def restore_progress(self, progress: float) -> None:
        """Called once when a run resumes at ``progress``, before its next step; methods whose step
        reads the progress of the latest :meth:`on_step_end` (DINO's schedules) set it here."""

    @property
    def train_magnification(self) -> float:
        """How many times larger image content looks in the backbone's training inputs than in the images.

        1 for methods that feed whole views. Patch tasks magnify: a patch of a quarter of the side fed
        at half the side shows objects twice as large, and a network sees objects best at the size it
        trained on (FixRes, Touvron et al. 2019, arXiv:1906.06423); the runner then also reads kNN on
        images resized by this factor.
        """
        return 1.0

    def view_pipelines(self) -> list[BatchViews]:
        """The view pipelines this method trains with, for the augmentation preview."""
        return []
