"""Frozen-feature evaluation: feature extraction and weighted kNN."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.augment import normalize


@dataclass(frozen=True)
class KNNProtocol:
    """Weighted kNN of Wu et al. 2018 (InstDisc), as used by DINO: votes ``exp(cos / t)`` of k neighbours."""

    k: int = 20
    t: float = 0.1
    bank_size: int = 0
    test_size: int = 0

    def describe(self) -> str:
        return f"weighted kNN, k={self.k}, T={self.t}, bank={self.bank_size}, test={self.test_size}"

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@torch.no_grad()
def extract_features(backbone: nn.Module, images: Tensor, batch_size: int = 512,
                     device: torch.device | str | None = None) -> Tensor:
    """L2-normalised backbone features of uint8 images (N, 3, S, S) -> (N, D) float32 on CPU.

    Runs in eval mode (BatchNorm running statistics) and restores the previous mode.
    """
    device = torch.device(device) if device is not None else next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    try:
        out = [backbone(normalize(images[i:i + batch_size].to(device).float() / 255)).float().cpu()
               for i in range(0, len(images), batch_size)]
    finally:
        backbone.train(was_training)
    return F.normalize(torch.cat(out), dim=1)


def knn_predict(bank: Tensor, bank_labels: Tensor, query: Tensor, num_classes: int,
                k: int = 20, t: float = 0.1, chunk: int = 1024) -> Tensor:
    """Class scores of a weighted kNN classifier.

    Args:
        bank: (N, D) L2-normalised features with labels ``bank_labels`` (N,).
        query: (M, D) L2-normalised features.
    Returns:
        (M, num_classes) summed weights ``exp(cos / t)`` of the k most similar bank items.
    """
    k = min(k, len(bank))
    scores = []
    for q in query.split(chunk):
        sim, idx = (q @ bank.T).topk(k, dim=1)  # (m, k)
        votes = torch.zeros(len(q), num_classes, dtype=sim.dtype)
        scores.append(votes.scatter_add_(1, bank_labels[idx], (sim / t).exp()))
    return torch.cat(scores)


def knn_accuracy(bank: Tensor, bank_labels: Tensor, query: Tensor, query_labels: Tensor,
                 k: int = 20, t: float = 0.1) -> float:
    """Top-1 accuracy in [0, 1] of :func:`knn_predict`."""
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    pred = knn_predict(bank, bank_labels, query, num_classes, k, t).argmax(1)
    return (pred == query_labels).float().mean().item()


class KNNEvaluator:
    """kNN top-1 of a backbone on a fixed labelled bank/test pair (the online monitor and ``eval``)."""

    def __init__(self, bank_images: Tensor, bank_labels: Tensor, test_images: Tensor, test_labels: Tensor,
                 k: int = 20, t: float = 0.1) -> None:
        self.bank_images, self.bank_labels = bank_images, bank_labels
        self.test_images, self.test_labels = test_images, test_labels
        self.protocol = KNNProtocol(k=k, t=t, bank_size=len(bank_images), test_size=len(test_images))

    def __call__(self, backbone: nn.Module) -> float:
        bank = extract_features(backbone, self.bank_images)
        test = extract_features(backbone, self.test_images)
        return knn_accuracy(bank, self.bank_labels, test, self.test_labels, self.protocol.k, self.protocol.t)


@dataclass(frozen=True)
class LinearProbeProtocol:
    """Multinomial logistic regression (L-BFGS) on frozen, L2-normalised, standardised features."""

    c: float = 1.0  # inverse L2 strength, scikit-learn's C
    max_iter: int = 1000
    train_size: int = 0
    test_size: int = 0

    def describe(self) -> str:
        return (f"linear probe: logistic regression (L-BFGS, C={self.c}, {self.max_iter} iterations), "
                f"train={self.train_size}, test={self.test_size}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def linear_probe_accuracy(train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor,
                          c: float = 1.0, max_iter: int = 1000) -> tuple[float, LinearProbeProtocol]:
    """Top-1 in [0, 1] of a logistic-regression probe, and its protocol.

    scikit-learn's L-BFGS solver converges to the same optimum every time, so the number depends
    only on the features and the labels, not on an SGD schedule.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train.numpy())
    clf = LogisticRegression(C=c, max_iter=max_iter)
    clf.fit(scaler.transform(train.numpy()), train_labels.numpy())
    acc = float((clf.predict(scaler.transform(test.numpy())) == test_labels.numpy()).mean())
    return acc, LinearProbeProtocol(c=c, max_iter=max_iter, train_size=len(train), test_size=len(test))
