"""Where a network's useful features are: weighted kNN on the pooled output of every stage.

The standard protocol (:class:`sslcore.eval.KNNEvaluator`) reads a backbone's last pooled
features. A pretext task specialises the last stages to its own labels: Doersch et al. 2015 and
Noroozi & Favaro 2016 transfer conv layers, not the task's last features, and Kolesnikov et al.
2019 (arXiv:1901.09005) and Goyal et al. 2019 (arXiv:1905.01235) find the best linear-probe
layer of rotation, jigsaw and colorization networks well before the end. One number at the end
can then hide what the earlier stages learned; reading every stage the same way, for the trained
network and for its random init, shows where the learning went.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.eval import KNNEvaluator, KNNProtocol, Score, extract_features, knn_accuracy


@dataclass(frozen=True)
class StageKNNProtocol(KNNProtocol):
    """The weighted kNN protocol on stage ``stage`` (0-based, of ``stages``), averaged over space."""

    stage: int = 0
    stages: int = 0
    channels: int = 0

    def describe(self) -> str:
        return (f"{super().describe()}, features: stage {self.stage + 1} of {self.stages} "
                f"({self.channels} channels, averaged over space)")


class StageReadout(nn.Module):
    """``backbone`` read at one stage: (B, 3, S, S) -> (B, C), that stage's output averaged over space.

    Works for every backbone with timm's ``forward_intermediates`` and ``feature_info`` (our
    ``convnet*``, timm's ResNets and ViTs; a ViT's stages are its blocks, its patch tokens averaged).
    """

    def __init__(self, backbone: nn.Module, stage: int) -> None:
        super().__init__()
        n = num_stages(backbone)
        if not -n <= stage < n:
            raise ValueError(f"stage {stage} out of range for a backbone with {n} stages")
        self.backbone, self.stage = backbone, stage % n

    def forward(self, x: Tensor) -> Tensor:
        feats = self.backbone.forward_intermediates(x, indices=[self.stage], intermediates_only=True)[0]
        return feats.mean((2, 3))


def has_stages(backbone: nn.Module) -> bool:
    """Whether ``backbone`` exposes timm's ``forward_intermediates`` and ``feature_info``."""
    return hasattr(backbone, "forward_intermediates") and hasattr(backbone, "feature_info")


def num_stages(backbone: nn.Module) -> int:
    """How many stages :class:`StageReadout` can read: the entries of timm's ``feature_info``."""
    if not has_stages(backbone):
        raise ValueError(f"{type(backbone).__name__} has no forward_intermediates/feature_info to read stages from")
    return len(backbone.feature_info)


class _Readouts(nn.Module):
    """The backbone's standard output and every stage averaged over space, from one forward pass,
    concatenated: (B, 3, S, S) -> (B, D + C_1 + ... + C_n)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor) -> Tensor:
        final, stages = self.backbone.forward_intermediates(x)
        return torch.cat([self.backbone.forward_head(final), *(f.mean((2, 3)) for f in stages)], 1)


def knn_with_stages(backbone: nn.Module, evaluator: KNNEvaluator) -> tuple[float, list[float]]:
    """The standard kNN top-1 (%) of ``evaluator`` and every stage's, first to last, from one pass
    over the bank and test images. Each readout's slice is L2-normalised on its own, so the first
    number is exactly ``100 * evaluator(backbone)`` and each stage's that of :class:`StageReadout`."""
    num_stages(backbone)  # a clear error for a backbone without stages
    widths = [backbone.num_features] + [info["num_chs"] for info in backbone.feature_info]
    readouts = _Readouts(backbone)
    bank = extract_features(readouts, evaluator.bank_images, normalized=False).split(widths, dim=1)
    test = extract_features(readouts, evaluator.test_images, normalized=False).split(widths, dim=1)
    p = evaluator.protocol
    top1 = [100 * knn_accuracy(F.normalize(b, dim=1), evaluator.bank_labels, F.normalize(t, dim=1),
                               evaluator.test_labels, p.k, p.t) for b, t in zip(bank, test)]
    return top1[0], top1[1:]


def stage_protocols(backbone: nn.Module, base: KNNProtocol) -> list[StageKNNProtocol]:
    """The protocol of each stage's score, first to last."""
    channels = [info["num_chs"] for info in backbone.feature_info]
    return [StageKNNProtocol(**asdict(base), stage=i, stages=len(channels), channels=c) for i, c in enumerate(channels)]


def knn_by_stage(backbone: nn.Module, evaluator: KNNEvaluator, model: str = "run") -> list[Score]:
    """One kNN score per stage of ``backbone``, first to last, each with its :class:`StageKNNProtocol`."""
    _, top1 = knn_with_stages(backbone, evaluator)
    return [Score("knn", model, t, p) for t, p in zip(top1, stage_protocols(backbone, evaluator.protocol))]


def stage_rows(scores: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Display rows, one per stage, from the ``to_dict`` of :func:`knn_by_stage` scores of the
    run (model "run") and of its random init (model "random init"): channels, both kNN top-1 and the gain."""
    by_stage: dict[int, dict[str, Any]] = {}
    for s in scores:
        p = s["protocol"]
        row = by_stage.setdefault(p["stage"], {"stage": f"{p['stage'] + 1} of {p['stages']}", "channels": p["channels"]})
        row[f"{s['model']} %"] = s["top1"]
    rows = [by_stage[i] for i in sorted(by_stage)]
    for row in rows:
        if "run %" in row and "random init %" in row:
            row["gain (points)"] = row["run %"] - row["random init %"]
    return [{k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
