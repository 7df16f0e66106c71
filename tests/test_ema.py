"""EMA targets: the exact update, buffers, frozen copies and the momentum schedule."""

import math

import pytest
import torch
from torch import nn

from sslcore.models.ema import copy_frozen, ema_update, momentum_schedule


def net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("m", [0.0, 0.5, 0.99, 1.0])
def test_ema_update_is_exact_for_every_parameter(m):
    online, target = net(0), net(1)
    old = [p.detach().clone() for p in target.parameters()]
    ema_update(target, online, m)
    for t, o, before in zip(target.parameters(), online.parameters(), old):
        torch.testing.assert_close(t, m * before + (1 - m) * o, rtol=0, atol=1e-7)
    if m == 1.0:
        assert all(torch.equal(t, b) for t, b in zip(target.parameters(), old))
    if m == 0.0:
        assert all(torch.equal(t, o) for t, o in zip(target.parameters(), online.parameters()))


def test_ema_update_matches_lightly():
    utils = pytest.importorskip("lightly.models.utils")
    online, ours, theirs = net(0), net(1), net(1)
    ema_update(ours, online, 0.9)
    utils.update_momentum(online, theirs, m=0.9)  # lightly's argument order: (model, model_ema, m)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_buffers_are_copied_not_averaged():
    # The documented behaviour: BatchNorm running statistics (and the batch counter) follow the
    # online network exactly; only parameters are averaged.
    online, target = net(0), net(1)
    online.train()
    online(torch.randn(16, 4))  # moves the online running statistics away from their init
    ema_update(target, online, 0.99)
    for t, o in zip(target.buffers(), online.buffers()):
        assert torch.equal(t, o)
    assert not torch.equal(target[1].running_mean, torch.zeros(8))


def test_ema_update_rejects_bad_arguments():
    with pytest.raises(ValueError, match="momentum"):
        ema_update(net(0), net(1), 1.5)
    with pytest.raises(ValueError, match="parameters"):
        ema_update(nn.Linear(2, 2), net(0), 0.5)


def test_copy_frozen_is_an_independent_gradient_free_copy():
    online = net(0)
    target = copy_frozen(online)
    assert all(not p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in online.parameters())
    assert all(torch.equal(t, o) and t.data_ptr() != o.data_ptr()
               for t, o in zip(target.parameters(), online.parameters()))
    out = target(torch.randn(4, 4)).sum()
    assert not out.requires_grad  # no graph through the target


def test_momentum_schedule_endpoints_and_byol_formula():
    base = 0.99
    assert momentum_schedule(0.0, base) == pytest.approx(base)
    assert momentum_schedule(1.0, base) == pytest.approx(1.0)
    assert momentum_schedule(0.5, base) == pytest.approx((base + 1) / 2)
    assert momentum_schedule(-1.0, base) == pytest.approx(base) and momentum_schedule(2.0, base) == pytest.approx(1.0)
    assert momentum_schedule(0.0, 0.9, final=0.95) == pytest.approx(0.9)
    steps = 10
    for k in range(steps + 1):
        # BYOL sec. 3.2: tau = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2
        byol = 1 - (1 - base) * (math.cos(math.pi * k / steps) + 1) / 2
        assert momentum_schedule(k / steps, base) == pytest.approx(byol, abs=1e-12)
    values = [momentum_schedule(k / steps, base) for k in range(steps + 1)]
    assert values == sorted(values)  # never decreases
