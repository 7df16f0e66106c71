"""The method-agnostic training loop: schedules, precision, finite-loss guard, callbacks."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Protocol, Sequence

import torch
from torch import Tensor

from sslcore.methods.base import Method


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule.

    AdamW reaches useful features in a few hundred steps, which is what live CPU runs have; the
    papers' LARS/SGD settings pay off over hundreds of epochs.
    """

    name: str = "adamw"  # "adamw" or "sgd" (momentum 0.9, nesterov)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05  # fraction of the run spent in linear warm-up
    final_lr_ratio: float = 0.01  # cosine decays to lr * final_lr_ratio

    def __post_init__(self) -> None:
        if self.name not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.name!r}")
        if self.lr <= 0 or not 0 <= self.warmup < 1:
            raise ValueError(f"need lr > 0 and 0 <= warmup < 1, got lr={self.lr}, warmup={self.warmup}")


def cosine_schedule(progress: float, base: float, final: float, warmup: float = 0.0) -> float:
    """Linear warm-up from 0 to ``base`` over ``warmup`` of the run, then cosine to ``final``."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return base * progress / warmup
    t = (progress - warmup) / (1 - warmup)
    return final + (base - final) * 0.5 * (1 + math.cos(math.pi * t))


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser of ``model``'s trainable parameters, with each group's ``lr_scale``.

    A :class:`Method` may scale the learning rate of some of its modules (:meth:`Method.lr_scales`);
    :func:`fit` sets each group's rate to the scheduled one times its ``lr_scale``.
    """
    scales = model.lr_scales() if isinstance(model, Method) else {}
    by_kind: dict[tuple[bool, float], list[torch.nn.Parameter]] = {}  # (decayed, lr scale) -> parameters
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = next((s for prefix, s in scales.items() if name.startswith(f"{prefix}.")), 1.0)
            # No weight decay on biases and norm parameters (all 1-D), as in SimCLR/BYOL/MAE.
            by_kind.setdefault((p.dim() > 1, scale), []).append(p)
    groups = [{"params": params, "weight_decay": cfg.weight_decay if decay else 0.0, "lr_scale": scale}
              for (decay, scale), params in by_kind.items()]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast where the hardware has native bf16 ("auto"), or as asked ("bf16"/"fp32")."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    use = precision == "bf16" or (precision == "auto" and bf16_supported(device))
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use)


class NonFiniteLossError(RuntimeError):
    """The loss stayed NaN or infinite; training stopped. ``state`` is where the loop stood."""

    def __init__(self, message: str, state: "TrainState") -> None:
        super().__init__(message)
        self.state = state


@dataclass
class TrainState:
    """What the loop reports to callbacks after every step."""

    step: int = 0
    seconds: float = 0.0  # training time; callbacks (evaluation, saving) pause this clock
    progress: float = 0.0  # in [0, 1] of the step or time budget
    images_seen: int = 0
    loss: float = float("nan")
    lr: float = 0.0
    images_per_second: float = 0.0
    collapse_std: float = float("nan")  # std of L2-normalised embeddings; 1/sqrt(d) healthy, 0 collapsed
    effective_rank: float = float("nan")  # of the batch's embeddings; near 1 when they span one direction
    embedding_dim: int = 0  # d of the embeddings the collapse monitor watches
    logs: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Where training stands, enough to continue it bit for bit in the loop's own terms.

    The method's weights and buffers travel beside it (``method.state_dict()``); this holds what
    only the loop knows.
    """

    state: TrainState
    optimizer: dict[str, Any]  # ``optimizer.state_dict()``
    generator: Tensor  # the batch and augmentation generator's state, (n,) uint8


class Callback(Protocol):
    def on_step(self, state: TrainState, method: Method) -> None: ...


def collapse_std(embedding: Tensor) -> float:
    """Mean over dimensions of the batch std of L2-normalised embeddings (B, D) (BYOL/SimSiam monitor)."""
    z = torch.nn.functional.normalize(embedding.float(), dim=1)
    return z.std(0).mean().item()


def effective_rank(embedding: Tensor) -> float:
    """Effective rank of L2-normalised, centred embeddings (B, D): ``exp`` of the entropy of their
    normalised singular values (Roy & Vetterli 2007). Between 1 (every image on one line: collapse to
    a dimension) and min(B, D) (spread evenly over every direction)."""
    z = torch.nn.functional.normalize(embedding.float(), dim=1)
    if not torch.isfinite(z).all():  # a diverged step: the loss check reports it, the SVD would raise
        return float("nan")
    s = torch.linalg.svdvals(z - z.mean(0))
    p = s / s.sum().clamp_min(1e-12)
    return float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))


def batches(images: Tensor, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless fresh shuffles of ``images`` (N, ...) in batches; drops each epoch's ragged tail."""
    n = len(images)
    if n < batch_size:
        raise ValueError(f"batch size {batch_size} is larger than the dataset ({n} images)")
    while True:
        order = torch.randperm(n, generator=generator, device=generator.device).to(images.device)
        for i in range(0, n - batch_size + 1, batch_size):
            yield images[order[i:i + batch_size]]


def fit(method: Method, images: Tensor, *, batch_size: int = 256, optim: OptimConfig = OptimConfig(),
        steps: int | None = None, max_seconds: float | None = None, seed: int = 0,
        precision: str = "auto", callbacks: Sequence[Callback] = (),
        should_stop: Callable[[TrainState], bool] = lambda state: False, max_bad_steps: int = 3,
        resume: Snapshot | None = None, snapshot_every: float = math.inf,
        on_snapshot: Callable[[Snapshot, Method], None] | None = None) -> TrainState:
    """Train ``method`` on uint8 ``images`` (N, 3, H, W) until the step or time budget is spent.

    The loop knows nothing about the method beyond :class:`Method`. A non-finite loss skips the
    update; ``max_bad_steps`` in a row raise :class:`NonFiniteLossError`.

    ``on_snapshot`` receives a :class:`Snapshot` every ``snapshot_every`` wall-clock seconds and
    when the loop ends (budget spent or stopped; not when an exception ends it). ``resume``
    continues from one, with the method's weights already loaded: counters, clock, learning-rate
    schedule, optimiser moments and random stream go on where they were; the data order starts a
    fresh shuffle.
    """
    if steps is None and max_seconds is None:
        raise ValueError("give a budget: steps, max_seconds or both")
    device = next(method.parameters()).device
    images = images.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = make_optimizer(method, optim)
    state, bad_in_a_row, window = TrainState(), 0, []
    if resume is not None:
        state = replace(resume.state, logs={})
        optimizer.load_state_dict(resume.optimizer)
        generator.set_state(resume.generator)
        method.restore_progress(state.progress)

    def snapshot() -> None:
        if on_snapshot is not None:
            on_snapshot(Snapshot(state, optimizer.state_dict(), generator.get_state()), method)

    method.train()
    last_snapshot = time.monotonic()
    if state.progress >= 1.0:  # resumed at its budget: nothing left to train
        method.eval()
        return state
    for x in batches(images, batch_size, generator):
        tic = time.perf_counter()
        state.lr = cosine_schedule(state.progress, optim.lr, optim.lr * optim.final_lr_ratio, optim.warmup)
        for group in optimizer.param_groups:
            group["lr"] = state.lr * group["lr_scale"]
        with autocast(device, precision):
            out = method.training_step(x, generator)
        loss = out.loss.float()
        optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            optimizer.step()
            bad_in_a_row = 0
        else:
            bad_in_a_row += 1
            state.skipped_steps += 1
            if bad_in_a_row >= max_bad_steps:
                raise NonFiniteLossError(
                    f"loss was {loss.item()} for {bad_in_a_row} steps in a row at step {state.step}; "
                    "the run keeps its last good checkpoint. Lower the learning rate or use fp32 precision.", state)
        method.on_step_end(state.progress)
        state.step += 1
        state.images_seen += len(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - tic
        state.seconds += dt
        window = (window + [dt])[-20:]
        state.images_per_second = len(x) * len(window) / sum(window)
        state.loss = loss.item()
        if out.embedding is not None:
            state.collapse_std, state.embedding_dim = collapse_std(out.embedding), out.embedding.shape[1]
            state.effective_rank = effective_rank(out.embedding)
        state.logs = dict(out.logs)
        state.progress = max(state.step / steps if steps else 0.0,
                             (state.seconds / max_seconds) if max_seconds else 0.0)
        for cb in callbacks:
            cb.on_step(state, method)
        if state.progress >= 1.0 or should_stop(state):
            break
        if time.monotonic() - last_snapshot >= snapshot_every:
            snapshot()
            last_snapshot = time.monotonic()
    snapshot()
    method.eval()
    return state
