"""Evaluation of what a backbone learned: frozen features, weighted kNN, linear probes with few
labels, fine-tuning, and the two references every score needs (random init, supervised).

Every score carries the protocol that produced it (:class:`Score`), because a top-1 without its
k, T, C, label fraction and budget compares with nothing.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.augment import BatchViews, ViewConfig, normalize, recipe
from sslcore.data import resize_images, stratified_split
from sslcore.logistic import LogisticModel, fit_logistic
from sslcore.methods.base import Method
from sslcore.methods.supervised import Supervised, SupervisedConfig
from sslcore.train import OptimConfig, TrainState, autocast, batches, cosine_schedule, fit

Progress = Callable[[float], None]  # fraction done in [0, 1]


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


@dataclass(frozen=True)
class ScaledKNNProtocol(KNNProtocol):
    """The weighted kNN protocol on images resized from ``image_size`` to ``input_size`` first."""

    image_size: int = 0
    input_size: int = 0

    def describe(self) -> str:
        return f"{super().describe()}, inputs resized {self.image_size} -> {self.input_size} px"


@torch.no_grad()
def extract_features(backbone: nn.Module, images: Tensor, batch_size: int = 512,
                     device: torch.device | str | None = None, progress: Progress | None = None,
                     normalized: bool = True) -> Tensor:
    """Backbone features of uint8 images (N, 3, S, S) -> (N, D) float32 on CPU, L2-normalised
    unless ``normalized`` is False.

    Runs in eval mode (BatchNorm running statistics) and restores the previous mode.
    ``progress`` receives the fraction of images done after each batch (for a progress bar).
    """
    device = torch.device(device) if device is not None else next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            out.append(backbone(normalize(images[i:i + batch_size].to(device).float() / 255)).float().cpu())
            if progress is not None:
                progress(min(1.0, (i + batch_size) / len(images)))
    finally:
        backbone.train(was_training)
    return F.normalize(torch.cat(out), dim=1) if normalized else torch.cat(out)


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

    def resized(self, size: int) -> "KNNEvaluator":
        """The same bank, test, k and T with every image resized to ``size``; the protocol says so."""
        out = KNNEvaluator(resize_images(self.bank_images, size), self.bank_labels,
                           resize_images(self.test_images, size), self.test_labels, self.protocol.k, self.protocol.t)
        out.protocol = ScaledKNNProtocol(**asdict(self.protocol), image_size=self.bank_images.shape[-1], input_size=size)
        return out

    def __call__(self, backbone: nn.Module) -> float:
        bank = extract_features(backbone, self.bank_images)
        test = extract_features(backbone, self.test_images)
        return knn_accuracy(bank, self.bank_labels, test, self.test_labels, self.protocol.k, self.protocol.t)


@dataclass(frozen=True)
class LinearProbeProtocol:
    """Multinomial logistic regression on frozen, L2-normalised, standardised features: scikit-learn's
    objective, minimised by full-batch L-BFGS in float32 (:mod:`sslcore.logistic`).

    ``c_grid`` non-empty: C was chosen by stratified ``folds``-fold cross-validation on the labelled
    training subset only (the test set never picks a hyper-parameter).
    """

    c: float = 1.0  # inverse L2 strength, scikit-learn's C
    max_iter: int = 1000
    train_size: int = 0
    test_size: int = 0
    fraction: float = 1.0  # of the labels, stratified and seeded (see label_subset)
    seed: int = 0
    c_grid: tuple[float, ...] = ()
    folds: int = 0

    def describe(self) -> str:
        how = (f"C={self.c:g} by {self.folds}-fold CV over {'/'.join(f'{c:g}' for c in self.c_grid)}"
               if self.c_grid else f"C={self.c:g}")
        return (f"linear probe: logistic regression (full-batch L-BFGS, {how}, at most {self.max_iter} iterations), "
                f"train={self.train_size} ({percent(self.fraction)} of labels, seed {self.seed}), test={self.test_size}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def linear_probe_accuracy(train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor,
                          c: float = 1.0, max_iter: int = 1000,
                          init: LogisticModel | None = None) -> tuple[float, LinearProbeProtocol]:
    """Top-1 in [0, 1] of a logistic-regression probe (:func:`sslcore.logistic.fit_logistic`), and its protocol.

    L-BFGS on a strictly convex objective reaches the same optimum from any start, so the number
    depends only on the features, the labels and C, not on an SGD schedule or a seed. The probe
    knows the classes of ``train_labels`` (as ``init``, a fit on the same labels, does); a test
    class it never saw counts as an error.
    """
    model = fit_logistic(train, train_labels, c, max_iter=max_iter, init=init)
    protocol = LinearProbeProtocol(c=c, max_iter=max_iter, train_size=len(train), test_size=len(test))
    return model.accuracy(test, test_labels), protocol


# ---------------------------------------------------------------------------------------------
# few labels: stratified label fractions and probes with a validated C
# ---------------------------------------------------------------------------------------------
C_GRID = (0.01, 0.1, 1.0, 10.0)
FALLBACK_C = 0.1  # when some class has a single label no fold can validate C: strong L2 suits few labels


def percent(fraction: float) -> str:
    """0.01 -> '1%', 0.1 -> '10%', 1.0 -> '100%'."""
    return f"{100 * fraction:.3g}%"


def label_subset(labels: Tensor, fraction: float, seed: int) -> Tensor:
    """Sorted indices of a stratified, seeded ``fraction`` of ``labels`` (N,).

    Each class keeps ``round(fraction * n_class)`` samples and at least one, so class proportions
    hold within one sample per class. Each class's order is drawn once per seed, whatever the
    fraction, so subsets are nested: the 1% subset lies inside the 10% one, as in the
    semi-supervised splits of SimCLR (Chen et al. 2020) where 1% and 10% are compared.
    """
    return stratified_split(labels, fraction, seed)[0]


def choose_c(train: Tensor, train_labels: Tensor, grid: Sequence[float] = C_GRID, folds: int = 3,
             seed: int = 0, max_iter: int = 1000) -> tuple[float, int, LogisticModel | None]:
    """The C of ``grid`` with the best mean accuracy in stratified k-fold CV on the training set.

    Returns ``(c, folds_used, model)``: ``folds_used`` shrinks to the smallest class count and is 0
    (with ``FALLBACK_C``) when a class has a single label; ``model`` is the chosen C's fit on the
    last fold, a warm start for the final fit. Each fold fits the grid in ascending order, every C
    starting from the previous optimum.
    """
    from sklearn.model_selection import StratifiedKFold

    counts = torch.bincount(train_labels)
    folds = min(folds, int(counts[counts > 0].min()))
    if folds < 2:
        return FALLBACK_C, 0, None
    grid = sorted(grid)
    num_classes = int(train_labels.max()) + 1
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(train.numpy(), train_labels.numpy())
    accs: dict[float, list[float]] = {c: [] for c in grid}
    fits: dict[float, LogisticModel] = {}
    for fit_idx, val_idx in splits:
        fit_idx, val_idx = torch.from_numpy(fit_idx), torch.from_numpy(val_idx)
        model = None
        for c in grid:
            model = fit_logistic(train[fit_idx], train_labels[fit_idx], c, num_classes, max_iter, init=model)
            accs[c].append(model.accuracy(train[val_idx], train_labels[val_idx]))
            fits[c] = model
    best = max(grid, key=lambda c: sum(accs[c]))  # ties keep the first, smallest C (strongest L2)
    return best, folds, fits[best]


def linear_probe(train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor, fraction: float = 1.0,
                 seed: int = 0, c: float | None = None, grid: Sequence[float] = C_GRID, folds: int = 3,
                 max_iter: int = 1000, model: str = "run") -> Score:
    """Linear probe on ``fraction`` of the training labels (stratified, seeded), tested on all of ``test``.

    Args:
        train: (N, D) frozen features with labels ``train_labels`` (N,).
        test: (M, D) frozen features with labels ``test_labels`` (M,).
        c: fixed C; None chooses it from ``grid`` by cross-validation on the labelled subset.
    """
    idx = label_subset(train_labels, fraction, seed)
    x, y = train[idx], train_labels[idx]
    used_grid: tuple[float, ...] = ()
    init: LogisticModel | None = None
    if c is None:
        c, folds, init = choose_c(x, y, grid, folds, seed, max_iter)
        used_grid = tuple(sorted(grid)) if folds else ()
    acc, protocol = linear_probe_accuracy(x, y, test, test_labels, c=c, max_iter=max_iter, init=init)
    protocol = replace(protocol, fraction=fraction, seed=seed, c_grid=used_grid, folds=folds if used_grid else 0)
    return Score("linear", model, 100 * acc, protocol, fraction)


# ---------------------------------------------------------------------------------------------
# supervised reference and fine-tuning
# ---------------------------------------------------------------------------------------------
def describe_views(cfg: ViewConfig) -> str:
    """A one-line summary of a view recipe for protocol lines."""
    parts = [f"crop {cfg.crop_scale[0]:g}-{cfg.crop_scale[1]:g}", f"flip {cfg.hflip_p:g}"]
    if cfg.jitter_p:
        parts.append(f"jitter {cfg.jitter_p:g} ({cfg.brightness:g}/{cfg.contrast:g}/{cfg.saturation:g}/{cfg.hue:g})")
    for name, p in (("gray", cfg.gray_p), ("blur", cfg.blur_p), ("solarize", cfg.solarize_p), ("rotate", cfg.rotation)):
        if p:
            parts.append(f"{name} {p:g}")
    return ", ".join(parts)


@dataclass(frozen=True)
class SupervisedProtocol:
    """The same backbone + a linear head trained with cross-entropy from random init."""

    backbone: str = ""
    steps: int = 0
    batch_size: int = 0
    optimizer: str = "adamw"
    lr: float = 0.0
    views: str = ""
    train_size: int = 0
    test_size: int = 0
    fraction: float = 1.0
    seed: int = 0

    def describe(self) -> str:
        return (f"supervised reference: {self.backbone} + linear head, cross-entropy from random init on "
                f"{self.train_size} labelled images ({percent(self.fraction)}, seed {self.seed}), {self.steps} steps "
                f"of batch {self.batch_size}, {self.optimizer} lr {self.lr:g}, views: {self.views}; "
                f"top-1 of its head, test={self.test_size}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def train_supervised(backbone: nn.Module, images: Tensor, labels: Tensor, num_classes: int, views: ViewConfig,
                     steps: int, batch_size: int, optim: OptimConfig | None = None, seed: int = 0,
                     precision: str = "auto", progress: Progress | None = None) -> Supervised:
    """Train ``backbone`` + a linear head on uint8 ``images`` (N, 3, S, S) and ``labels`` (N,) with
    :func:`sslcore.train.fit`, the loop that trained the self-supervised run.

    The batch shrinks to N when there are fewer labelled images than one batch.
    """
    device = next(backbone.parameters()).device
    method = Supervised(backbone, SupervisedConfig(images.shape[-1], num_classes), images.to(device),
                        labels.to(device), views).to(device)
    callbacks = [] if progress is None else [_FitProgress(progress)]
    fit(method, torch.arange(len(images), device=device), batch_size=min(batch_size, len(images)),
        optim=optim or OptimConfig(), steps=steps, seed=seed, precision=precision, callbacks=callbacks)
    return method.eval()


class _FitProgress:
    """A :func:`sslcore.train.fit` callback that forwards training progress to a progress bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_step(self, state: TrainState, method: Method) -> None:
        self.progress(state.progress)


def supervised_reference(make_backbone: Callable[[], nn.Module], bank_images: Tensor, bank_labels: Tensor,
                         test_images: Tensor, test_labels: Tensor, fraction: float, views: ViewConfig, steps: int,
                         batch_size: int, optim: OptimConfig | None = None, seed: int = 0, backbone_name: str = "",
                         knn: KNNProtocol | None = None, progress: Progress | None = None) -> list[Score]:
    """Supervised reference "trained for the same budget" on ``fraction`` of the bank's labels.

    Returns the top-1 of its head on the test images and, when ``knn`` is given, the weighted kNN
    of its frozen features with that protocol (the evaluation asks for it at 100% of the labels, so
    the kNN row has a supervised column too).
    """
    optim = optim or OptimConfig()
    idx = label_subset(bank_labels, fraction, seed)
    num_classes = int(max(bank_labels.max(), test_labels.max())) + 1
    model = train_supervised(make_backbone(), bank_images[idx], bank_labels[idx], num_classes, views, steps,
                             batch_size, optim, seed, progress=progress)
    top1 = 100 * (model.predict(test_images) == test_labels).float().mean().item()
    protocol = SupervisedProtocol(backbone=backbone_name, steps=steps, batch_size=min(batch_size, len(idx)),
                                  optimizer=optim.name, lr=optim.lr, views=describe_views(views), train_size=len(idx),
                                  test_size=len(test_images), fraction=fraction, seed=seed)
    scores = [Score("supervised", "supervised", top1, protocol, fraction)]
    if knn is not None:
        bank, test = extract_features(model.backbone, bank_images), extract_features(model.backbone, test_images)
        scores.append(Score("knn", "supervised", 100 * knn_accuracy(bank, bank_labels, test, test_labels, knn.k, knn.t),
                            replace(knn, bank_size=len(bank), test_size=len(test))))
    return scores


@dataclass(frozen=True)
class FineTuneConfig:
    """End-to-end fine-tuning of a pre-trained encoder on few labels (SimCLR, Chen et al. 2020, appendix B.5)."""

    epochs: int = 10  # SimCLR: 60 epochs with 1% of ImageNet labels, 30 with 10%
    encoder_lr: float = 1e-4  # small: keep what pre-training learned
    head_lr: float = 1e-2  # large: the head starts from scratch
    batch_size: int = 128  # SimCLR: 4096
    weight_decay: float = 0.0  # SimCLR fine-tunes without weight decay

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"need epochs >= 1 and batch_size >= 1, got {self.epochs}, {self.batch_size}")
        if self.encoder_lr <= 0 or self.head_lr <= 0:
            raise ValueError(f"learning rates must be positive, got {self.encoder_lr}, {self.head_lr}")


@dataclass(frozen=True)
class FineTuneProtocol:
    epochs: int = 0
    steps: int = 0
    encoder_lr: float = 0.0
    head_lr: float = 0.0
    batch_size: int = 0
    weight_decay: float = 0.0
    views: str = ""
    train_size: int = 0
    test_size: int = 0
    fraction: float = 1.0
    seed: int = 0

    def describe(self) -> str:
        return (f"fine-tuning: encoder lr {self.encoder_lr:g}, head lr {self.head_lr:g} (AdamW, cosine), "
                f"{self.epochs} epochs = {self.steps} steps of batch {self.batch_size}, views: {self.views}; "
                f"train={self.train_size} ({percent(self.fraction)} of labels, seed {self.seed}), test={self.test_size}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def finetune(backbone: nn.Module, bank_images: Tensor, bank_labels: Tensor, test_images: Tensor,
             test_labels: Tensor, fraction: float = 0.1, cfg: FineTuneConfig = FineTuneConfig(), seed: int = 0,
             model: str = "run", precision: str = "auto", progress: Progress | None = None) -> Score:
    """Fine-tune a copy of ``backbone`` + a new linear head on ``fraction`` of the labels.

    Two parameter groups (encoder at ``encoder_lr``, head at ``head_lr``) is why this has its own
    short loop: :func:`sslcore.train.fit` drives every group with one learning rate. Views are crops
    and flips only, as SimCLR fine-tunes. ``backbone`` itself is left untouched.
    """
    idx = label_subset(bank_labels, fraction, seed)
    images, labels = bank_images[idx], bank_labels[idx]
    num_classes = int(max(bank_labels.max(), test_labels.max())) + 1
    device = next(backbone.parameters()).device
    encoder = copy.deepcopy(backbone).train()
    head = nn.Linear(encoder.num_features, num_classes).to(device)
    view_cfg = recipe("mild", images.shape[-1])
    views = BatchViews(view_cfg)
    batch = min(cfg.batch_size, len(images))
    steps = cfg.epochs * (len(images) // batch)
    opt = torch.optim.AdamW([{"params": encoder.parameters(), "lr": cfg.encoder_lr},
                             {"params": head.parameters(), "lr": cfg.head_lr}], weight_decay=cfg.weight_decay)
    base = [cfg.encoder_lr, cfg.head_lr]
    g = torch.Generator(device=device).manual_seed(seed)
    index = batches(torch.arange(len(images), device=device), batch, g)
    images, labels = images.to(device), labels.to(device)
    for step in range(steps):
        for group, lr in zip(opt.param_groups, base):
            group["lr"] = cosine_schedule(step / steps, lr, 0.0)
        i = next(index)
        with autocast(device, precision):
            logits = head(encoder(views(images[i], g)))
        loss = F.cross_entropy(logits.float(), labels[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress((step + 1) / steps)
    encoder.eval()
    with torch.no_grad():
        pred = torch.cat([head(encoder(normalize(test_images[j:j + 512].to(device).float() / 255))).argmax(1).cpu()
                          for j in range(0, len(test_images), 512)])
    top1 = 100 * (pred == test_labels).float().mean().item()
    protocol = FineTuneProtocol(epochs=cfg.epochs, steps=steps, encoder_lr=cfg.encoder_lr, head_lr=cfg.head_lr,
                                batch_size=batch, weight_decay=cfg.weight_decay, views=describe_views(view_cfg),
                                train_size=len(idx), test_size=len(test_images), fraction=fraction, seed=seed)
    return Score("finetune", model, top1, protocol, fraction)


# ---------------------------------------------------------------------------------------------
# scores with their protocols
# ---------------------------------------------------------------------------------------------
Protocol = Union[KNNProtocol, LinearProbeProtocol, SupervisedProtocol, FineTuneProtocol]


@dataclass(frozen=True)
class Score:
    """One top-1 (in %) with the protocol that produced it.

    Attributes:
        metric: "knn", "linear", "finetune" or "supervised" (a supervised model's own head).
        model: "run" (the evaluated backbone) or a checkpoint's name, "random init" (the same
            architecture before training) or "supervised" (the same architecture trained with labels).
        fraction: share of the labels the score used (kNN: the whole bank, 1.0).
    """

    metric: str
    model: str
    top1: float
    protocol: Protocol
    fraction: float = 1.0

    @property
    def name(self) -> str:
        """'knn', or the metric and its label fraction: 'linear 1%', 'supervised 10%'."""
        return "knn" if self.metric == "knn" else f"{self.metric} {percent(self.fraction)}"

    def describe(self) -> str:
        return f"{self.model}: {self.top1:.1f}% top-1 ({self.protocol.describe()})"

    def to_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "model": self.model, "fraction": self.fraction, "top1": self.top1,
                "protocol": self.protocol.to_dict(), "describe": self.protocol.describe()}


def scores_json(scores: Sequence[Score]) -> dict[str, dict[str, dict[str, object]]]:
    """``{model: {score name: {top1, protocol, describe, ...}}}``, the CLI's ``scores`` object."""
    out: dict[str, dict[str, dict[str, object]]] = {}
    for s in scores:
        out.setdefault(s.model, {})[s.name] = s.to_dict()
    return out


def score_table(scores: Sequence[Score]) -> list[dict[str, str]]:
    """Rows for display: kNN, then one row per label fraction (ascending); a column per model.

    A label-fraction row reads across: each frozen model's linear probe ("run", or a checkpoint's
    name, then "random init"), the supervised reference trained on the same labels, and the
    fine-tuned encoder. Only models with a score get a column.
    """
    def cell(metric: str, model: str | None, fraction: float) -> str:
        found = [s for s in scores if s.metric == metric and model in (None, s.model) and s.fraction == fraction]
        return f"{found[0].top1:.1f}" if found else ""

    models = list(dict.fromkeys(s.model for s in scores if s.metric != "finetune"))
    finetuned = any(s.metric == "finetune" for s in scores)

    def row(score: str, metric: str, fraction: float) -> dict[str, str]:
        out = {"score": score}
        for m in models:
            out[f"{m} %"] = cell("supervised" if m == "supervised" and metric == "linear" else metric, m, fraction)
        if finetuned:
            out["fine-tuned %"] = cell("finetune", None, fraction) if metric == "linear" else ""
        return out

    rows = []
    knn = [s for s in scores if s.metric == "knn"]
    if knn:
        rows.append(row(f"weighted kNN (k={knn[0].protocol.k}, T={knn[0].protocol.t:g})", "knn", 1.0))
    fractions = sorted({s.fraction for s in scores if s.metric != "knn"})
    rows += [row(f"linear probe, {percent(f)} labels", "linear", f) for f in fractions]
    return rows


def frozen_scores(bank: Tensor, bank_labels: Tensor, test: Tensor, test_labels: Tensor, model: str = "run",
                  knn: KNNProtocol | None = KNNProtocol(), fractions: Sequence[float] = (), seed: int = 0,
                  c: float | None = None) -> list[Score]:
    """kNN (when ``knn`` is given) and a linear probe per label fraction, all on frozen features.

    Args:
        bank: (N, D) L2-normalised training features, labels ``bank_labels`` (N,).
        test: (M, D) L2-normalised test features, labels ``test_labels`` (M,).
    """
    scores = []
    if knn is not None:
        protocol = replace(knn, bank_size=len(bank), test_size=len(test))
        scores.append(Score("knn", model, 100 * knn_accuracy(bank, bank_labels, test, test_labels, knn.k, knn.t),
                            protocol))
    scores += [linear_probe(bank, bank_labels, test, test_labels, f, seed, c, model=model) for f in fractions]
    return scores


def parse_fractions(text: str) -> tuple[float, ...]:
    """'0.01,0.1,1' -> (0.01, 0.1, 1.0); each in (0, 1]."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise ValueError(f"label fractions must be numbers separated by commas, got {text!r}") from e
    if not values or not all(0 < v <= 1 and math.isfinite(v) for v in values):
        raise ValueError(f"label fractions must lie in (0, 1], got {text!r}")
    return values


@torch.no_grad()
def nearest(features: Tensor, index: int, k: int = 8) -> Tensor:
    """Indices (k,) of the k items most cosine-similar to item ``index`` of ``features`` (N, D),
    most similar first, the item itself excluded."""
    sim = features @ features[index]
    sim[index] = -float("inf")
    return sim.topk(min(k, len(features) - 1)).indices


# ---------------------------------------------------------------------------------------------
# everything for one backbone: what the CLI's ``eval`` and the Embeddings page run
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalPlan:
    """Which scores to measure; every one is reported with its protocol."""

    knn: KNNProtocol | None = KNNProtocol()
    fractions: tuple[float, ...] = ()  # a linear probe (and fine-tuning, supervised) per label fraction
    random_init: bool = False  # the same scores for the same architecture before training
    supervised: bool = False  # a supervised reference per fraction, trained for the run's budget
    finetune: FineTuneConfig | None = None  # fine-tune the run's encoder per fraction
    seed: int = 0  # label subsets, C folds, supervised and fine-tuning randomness

    def __post_init__(self) -> None:
        if not all(0 < f <= 1 for f in self.fractions):
            raise ValueError(f"label fractions must lie in (0, 1], got {self.fractions}")
        if (self.supervised or self.finetune) and not self.fractions:
            raise ValueError("supervised and fine-tuned references need at least one label fraction")


@dataclass(frozen=True)
class Reference:
    """How to rebuild the run's architecture and what budget it trained with.

    Attributes:
        make_backbone: a fresh backbone at the run's own random init (same seed, same weights).
        views: the run's view recipe, so the supervised reference sees the same augmentation.
        steps: the run's training steps: the supervised reference gets as many.
    """

    make_backbone: Callable[[], nn.Module]
    backbone_name: str
    views: ViewConfig
    steps: int
    batch_size: int
    optim: OptimConfig = OptimConfig()


def evaluate(backbone: nn.Module, bank_images: Tensor, bank_labels: Tensor, test_images: Tensor, test_labels: Tensor,
             plan: EvalPlan, reference: Reference | None = None, model: str = "run",
             progress: Progress | None = None) -> list[Score]:
    """Every score of ``plan`` for ``backbone`` (and its references) on a labelled bank/test pair.

    Args:
        bank_images: (N, 3, S, S) uint8 labelled training images: the kNN bank and the probes' and
            references' training set. labels ``bank_labels`` (N,).
        test_images: (M, 3, S, S) uint8 held-out images with ``test_labels`` (M,).
        reference: needed for ``plan.random_init`` and ``plan.supervised``.
        model: the name of ``backbone``'s column ("run", or "random init" when it is one).
        progress: overall fraction done, for a progress bar.
    """
    if (plan.random_init or plan.supervised) and reference is None:
        raise ValueError("random-init and supervised references need a Reference (architecture and budget)")
    stages: list[tuple[float, Callable[[Progress], list[Score]]]] = []

    def frozen(net: Callable[[], nn.Module], name: str) -> Callable[[Progress], list[Score]]:
        def run(done: Progress) -> list[Score]:
            module = net()
            bank = extract_features(module, bank_images, progress=lambda f: done(0.4 * f))
            test = extract_features(module, test_images, progress=lambda f: done(0.4 + 0.1 * f))
            return frozen_scores(bank, bank_labels, test, test_labels, name, plan.knn, plan.fractions, plan.seed)
        return run

    stages.append((1.0, frozen(lambda: backbone, model)))
    if plan.random_init:
        stages.append((1.0, frozen(reference.make_backbone, "random init")))
    if plan.supervised:
        for f in sorted(plan.fractions):
            stages.append((3.0, lambda done, f=f: supervised_reference(
                reference.make_backbone, bank_images, bank_labels, test_images, test_labels, f, reference.views,
                reference.steps, reference.batch_size, reference.optim, plan.seed, reference.backbone_name,
                plan.knn if f == 1.0 else None, done)))
    if plan.finetune is not None:
        for f in sorted(plan.fractions):
            stages.append((2.0, lambda done, f=f: [finetune(backbone, bank_images, bank_labels, test_images, test_labels,
                                                            f, plan.finetune, plan.seed, model=model, progress=done)]))
    total, start, scores = sum(w for w, _ in stages), 0.0, []
    for weight, stage in stages:
        def done(f: float, start: float = start, weight: float = weight) -> None:
            if progress is not None:
                progress(min(1.0, (start + weight * f) / total))
        scores += stage(done)
        done(1.0)
        start += weight
    return scores
