"""The torch probe solver minimises scikit-learn's logistic-regression objective."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sslcore.logistic import fit_logistic, objective


def blobs(n=600, d=20, k=4, seed=0):
    """Overlapping Gaussian classes: an optimum with a real trade-off between fit and L2."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g)
    y = torch.arange(n) % k
    return 3 + 2 * (centres[y] + 1.5 * torch.randn(n, d, generator=g)), y


@pytest.mark.parametrize("c", [0.01, 1.0, 100.0])
def test_fit_reaches_scikit_learns_optimum(c):
    x, y = blobs()
    model = fit_logistic(x, y, c)
    z = StandardScaler().fit_transform(x.double().numpy())
    ref = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(z, y.numpy())
    z = torch.from_numpy(z)
    ours = objective(model.weight.double(), model.bias.double(), z, y, c).item()
    theirs = objective(torch.from_numpy(ref.coef_), torch.from_numpy(ref.intercept_), z, y, c).item()
    assert ours == pytest.approx(theirs, rel=1e-5)
    np.testing.assert_allclose(model.weight.numpy(), ref.coef_, atol=2e-3 * np.abs(ref.coef_).max())
    # The intercept is free up to a common shift (softmax), so compare it centred.
    bias = model.bias - model.bias.mean()
    np.testing.assert_allclose(bias.numpy(), ref.intercept_ - ref.intercept_.mean(), atol=2e-3 * np.abs(ref.coef_).max())
    assert (model.predict(x).numpy() == ref.predict(z.numpy())).mean() > 0.99


def test_warm_start_changes_iterations_not_the_optimum():
    x, y = blobs(seed=1)
    cold = fit_logistic(x, y, 1.0)
    warm = fit_logistic(x, y, 1.0, init=fit_logistic(x, y, 0.1))
    assert warm.iterations < cold.iterations
    torch.testing.assert_close(warm.weight, cold.weight, atol=1e-3, rtol=0)


def test_standardisation_is_scikit_learns_and_constant_features_are_safe():
    x, y = blobs(n=200, d=5)
    x[:, 2] = 7.0  # a dead feature: zero variance
    model = fit_logistic(x, y, 1.0)
    scaler = StandardScaler().fit(x.numpy())
    np.testing.assert_allclose(model.mean.numpy(), scaler.mean_, rtol=1e-5)
    np.testing.assert_allclose(model.scale.numpy(), scaler.scale_, rtol=1e-5)
    assert torch.isfinite(model.logits(x)).all() and model.weight[:, 2].abs().max() < 1e-6
    assert model.accuracy(x, y) > 0.5


def test_classes_missing_from_training_get_logits_but_are_never_argmax_winners():
    x, y = blobs(n=300, k=3)
    model = fit_logistic(x, y, 1.0, num_classes=5)
    assert model.logits(x).shape == (300, 5) and model.predict(x).max() < 3


def test_c_must_be_positive():
    x, y = blobs(n=40)
    with pytest.raises(ValueError, match="C must be positive"):
        fit_logistic(x, y, 0.0)
