"""Supervised reference: the same backbone trained with cross-entropy on labelled images.

Not a self-supervised method, so it is deliberately absent from ``METHODS``: the Train page and
the registry tests iterate that dict, and this class needs labels. It exists so that evaluation
can put "what the same labels buy with plain supervision, for the same budget" next to every
probe (the few-labels comparison of SimCLR, Chen et al. 2020, sec. 6 / fig. 1 and table 7).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.augment import BatchViews, ViewConfig, normalize
from sslcore.methods.base import Method, StepOutput


@dataclass(frozen=True)
class SupervisedConfig:
    image_size: int = 32
    num_classes: int = 10
    label_smoothing: float = 0.0  # torchvision's ImageNet recipe: 0.1; off for a plain reference


class Supervised(Method):
    """Backbone + linear classifier, cross-entropy on augmented views of labelled images.

    ``sslcore.train.fit`` shuffles and batches whatever tensor it is given. Handing it sample
    indices ``torch.arange(N)`` instead of images lets this method look up each image together with
    its label, so the reference runs through the very loop (schedule, precision, NaN guard) that
    trained the self-supervised run.

    Args:
        backbone: maps (B, 3, S, S) normalised images to (B, backbone.num_features).
        cfg: sizes and the loss option.
        images: (N, 3, S, S) uint8 labelled images.
        labels: (N,) int64 in [0, cfg.num_classes).
        views: the view recipe to train with (the self-supervised run's own, for a fair reference).
    """

    name = "supervised"
    Config = SupervisedConfig

    def __init__(self, backbone: nn.Module, cfg: SupervisedConfig, images: Tensor, labels: Tensor,
                 views: ViewConfig) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, 3, S, S), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < cfg.num_classes:
            raise ValueError(f"labels must lie in [0, {cfg.num_classes}), got [{int(labels.min())}, {int(labels.max())}]")
        super().__init__(backbone, cfg)
        self.classifier = nn.Linear(backbone.num_features, cfg.num_classes)
        self.views = BatchViews(views)
        # Data, not state: kept out of state_dict so a checkpoint holds only weights.
        self.register_buffer("images", images, persistent=False)
        self.register_buffer("labels", labels, persistent=False)

    def training_step(self, index: Tensor, generator: torch.Generator) -> StepOutput:
        """index: (B,) int64 sample indices (see the class docstring)."""
        labels = self.labels[index]
        logits = self.classifier(self.backbone(self.views(self.images[index], generator))).float()  # (B, C)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.cfg.label_smoothing)
        top1 = (logits.argmax(1) == labels).float().mean().item()
        return StepOutput(loss=loss, logs={"train_top1": 100 * top1})

    def view_pipelines(self) -> list[BatchViews]:
        return [self.views]

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 512) -> Tensor:
        """Class predictions (N,) for uint8 images (N, 3, S, S), in eval mode."""
        was_training = self.training
        self.eval()
        device = self.classifier.weight.device
        try:
            return torch.cat([self.classifier(self.backbone(normalize(images[i:i + batch_size].to(device).float() / 255)))
                              .argmax(1).cpu() for i in range(0, len(images), batch_size)])
        finally:
            self.train(was_training)
