import math

import pytest
import torch
from torch import nn

from sslcore.methods.base import Method, StepOutput
from sslcore.train import (NonFiniteLossError, OptimConfig, batches, collapse_std, cosine_schedule, effective_rank, fit,
                           make_optimizer)


def test_cosine_schedule_endpoints():
    assert cosine_schedule(0.0, 1.0, 0.1, warmup=0.1) == 0.0
    assert cosine_schedule(0.05, 1.0, 0.1, warmup=0.1) == pytest.approx(0.5)
    assert cosine_schedule(0.1, 1.0, 0.1, warmup=0.1) == pytest.approx(1.0)
    assert cosine_schedule(0.55, 1.0, 0.1, warmup=0.1) == pytest.approx(0.55)
    assert cosine_schedule(1.0, 1.0, 0.1, warmup=0.1) == pytest.approx(0.1)


def test_batches_cover_each_epoch_once_and_reshuffle():
    x = torch.arange(10)
    it = batches(x, 5, torch.Generator().manual_seed(0))
    first = torch.cat([next(it), next(it)])
    second = torch.cat([next(it), next(it)])
    assert sorted(first.tolist()) == list(range(10)) == sorted(second.tolist())
    assert first.tolist() != second.tolist()  # a fresh shuffle, not a replay of epoch one
    with pytest.raises(ValueError, match="larger than the dataset"):
        next(batches(x, 11, torch.Generator()))


def test_collapse_std():
    assert collapse_std(torch.ones(16, 8)) == pytest.approx(0.0, abs=1e-6)
    d = 256
    healthy = collapse_std(torch.randn(4096, d))
    assert healthy == pytest.approx(1 / math.sqrt(d), rel=0.05)


class Regress(Method):
    """Fits the mean pixel of each image from a linear map: a tiny loss that must go down."""

    name = "regress"

    def __init__(self, nan_after: int | None = None):
        super().__init__(nn.Linear(3, 1), None)
        self.calls, self.nan_after = 0, nan_after

    def training_step(self, images, generator):
        self.calls += 1
        x = images.float().mean((2, 3)) / 255
        loss = (self.backbone(x).squeeze(1) - x.sum(1)).pow(2).mean()
        if self.nan_after is not None and self.calls > self.nan_after:
            loss = loss * float("nan")
        return StepOutput(loss=loss)


class ScaledHead(Regress):
    """Regress through a second layer whose learning rate is ten times the backbone's."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 1)

    def training_step(self, images, generator):
        x = images.float().mean((2, 3)) / 255
        return StepOutput(loss=(self.head(self.backbone(x)).squeeze(1) - x.sum(1)).pow(2).mean())

    def lr_scales(self):
        return {"head": 10.0}


def data(n=64):
    return torch.randint(0, 256, (n, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_fit_reduces_loss_and_reports():
    seen = []

    class Record:
        def on_step(self, state, method):
            seen.append((state.step, state.loss, state.lr))

    state = fit(Regress(), data(), batch_size=16, optim=OptimConfig(lr=0.05, warmup=0.1), steps=60,
                precision="fp32", callbacks=[Record()])
    assert state.step == 60 and len(seen) == 60
    assert seen[-1][1] < 0.1 * seen[1][1]
    assert state.images_seen == 60 * 16 and state.images_per_second > 0
    assert state.progress == pytest.approx(1.0)


def test_optimizer_groups_carry_lr_scales_and_decay_only_matrices():
    method = ScaledHead()
    groups = make_optimizer(method, OptimConfig(weight_decay=0.1)).param_groups
    by_param = {id(p): (g["lr_scale"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert by_param == {id(method.backbone.weight): (1.0, 0.1), id(method.backbone.bias): (1.0, 0.0),
                        id(method.head.weight): (10.0, 0.1), id(method.head.bias): (10.0, 0.0)}


def test_fit_applies_each_groups_lr_scale():
    method = ScaledHead()
    before = {n: p.detach().clone() for n, p in method.named_parameters()}
    fit(method, data(), batch_size=16, optim=OptimConfig(lr=1e-3, weight_decay=0.0, warmup=0.0), steps=1,
        precision="fp32")
    # Adam's first update moves every parameter by lr * g / |g| = lr (times its group's scale).
    for name, p in method.named_parameters():
        step = (p.detach() - before[name]).abs()
        torch.testing.assert_close(step, torch.full_like(step, 1e-2 if name.startswith("head") else 1e-3),
                                   rtol=1e-3, atol=0)


def test_stop_predicate_and_time_budget():
    state = fit(Regress(), data(), batch_size=16, steps=1000, precision="fp32", should_stop=lambda s: s.step == 7)
    assert state.step == 7
    state = fit(Regress(), data(), batch_size=16, max_seconds=0.2, precision="fp32")
    assert 0.2 <= state.seconds < 1.0


def test_finite_loss_guard_keeps_last_good_weights():
    method = Regress(nan_after=5)
    with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
        fit(method, data(), batch_size=16, steps=100, precision="fp32")
    assert all(torch.isfinite(p).all() for p in method.parameters())
    assert method.calls == 8


def test_fit_needs_a_budget():
    with pytest.raises(ValueError, match="budget"):
        fit(Regress(), data(), batch_size=16)


def test_effective_rank_counts_the_directions_embeddings_use():
    torch.manual_seed(0)
    assert effective_rank(torch.randn(256, 8)) == pytest.approx(8, rel=0.1)  # isotropic in 8 dimensions
    line = torch.randn(256, 1) @ torch.randn(1, 64)  # every embedding on one line through the origin
    assert effective_rank(line + 1e-4 * torch.randn(256, 64)) < 1.5
    two = torch.cat([torch.randn(256, 2), torch.zeros(256, 62)], 1)
    assert effective_rank(two) == pytest.approx(2, rel=0.15)
