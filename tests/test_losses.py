import math

import pytest
import torch
import torch.nn.functional as F

from sslcore.losses import nt_xent


def nt_xent_reference(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Eq. 1 of SimCLR written as the paper's loop over the 2N views."""
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    n = len(z0)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = torch.stack([z[i] @ z[k] / t for k in range(2 * n) if k != i])
        total += -(z[i] @ z[j] / t - torch.logsumexp(sims, 0))
    return total / (2 * n)


def test_identical_embeddings_give_log_of_negatives():
    # Every view equals every other: all 2B-1 logits tie, so the loss is log(2B - 1).
    z = torch.ones(8, 16)
    assert nt_xent(z, z, 0.5).item() == pytest.approx(math.log(15), abs=1e-5)


def test_orthogonal_pairs_closed_form():
    # Both views of pair 0 are e0, both of pair 1 are e1. For a view e0 the positive logit is 1/t
    # and its two negatives (the views e1) have logit 0.
    t = 0.5
    z0 = torch.eye(2)
    z1 = torch.eye(2)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert nt_xent(z0, z1, t).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("t", [0.07, 0.2, 1.0])
def test_matches_reference_loop(t):
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert nt_xent(z0, z1, t).item() == pytest.approx(nt_xent_reference(z0, z1, t).item(), rel=1e-5)


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_matches_lightly(t):
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(32, 128, generator=g), torch.randn(32, 128, generator=g)
    oracle = lightly_loss.NTXentLoss(temperature=t)(z0, z1).item()
    assert nt_xent(z0, z1, t).item() == pytest.approx(oracle, rel=1e-5)


def test_scale_invariant_and_gradients_flow():
    z0 = torch.randn(4, 8, requires_grad=True)
    z1 = torch.randn(4, 8)
    loss = nt_xent(z0, z1)
    assert loss.item() == pytest.approx(nt_xent(3 * z0, 0.5 * z1).item(), rel=1e-5)
    loss.backward()
    assert torch.isfinite(z0.grad).all() and z0.grad.abs().sum() > 0


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.ones(2, 3), torch.ones(2, 3), 0.0)
    with pytest.raises(ValueError, match="one shape"):
        nt_xent(torch.ones(2, 3), torch.ones(3, 3))
