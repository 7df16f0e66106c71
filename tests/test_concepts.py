import numpy as np
import pytest

from sslcore.concepts import COSINE_PRESETS, cosine_similarity, info_nce_terms, nt_xent_landscape, simulate_ema


@pytest.mark.parametrize("name,expected", [("a=[2,1], a+=[3,2], b=[-2,1]", (0.992, -0.600)),
                                           ("[1,0], [0.9,0.4], [-0.5,0.8]", (0.914, -0.530))])
def test_cosine_presets_reproduce_the_seeds(name, expected):
    anchor, pos, neg = COSINE_PRESETS[name]
    assert round(cosine_similarity(anchor, pos), 3) == expected[0]
    assert round(cosine_similarity(anchor, neg), 3) == expected[1]


def test_cosine_zero_vector():
    with pytest.raises(ValueError, match="zero vector"):
        cosine_similarity([0, 0], [1, 0])


def test_info_nce_terms():
    loss, w = info_nce_terms(1.0, np.array([0.0, 0.0]), 0.5)
    assert loss == pytest.approx(-np.log(np.exp(2) / (np.exp(2) + 2)))
    assert w.sum() == pytest.approx(1 - np.exp(-loss))
    # Lower temperature puts more of the weight on the hardest negative.
    hard_share = [info_nce_terms(0.5, np.array([0.4, 0.0, -0.2]), t)[1] for t in (1.0, 0.1)]
    assert (hard_share[1][0] / hard_share[1].sum()) > (hard_share[0][0] / hard_share[0].sum())


def test_landscape_grows_with_batch():
    losses = nt_xent_landscape(np.array([0.1, 0.5]), [8, 256])
    assert losses.shape == (2, 2)
    assert (losses[1] > losses[0]).all()  # more negatives, higher loss at a fixed positive similarity


def test_ema_trade_off():
    sim = simulate_ema(steps=3000)
    ms = sorted(sim.lag)
    assert all(sim.lag[a] < sim.lag[b] for a, b in zip(ms, ms[1:]))  # staler with higher momentum
    assert all(sim.jitter[a] > sim.jitter[b] for a, b in zip(ms, ms[1:]))  # but steadier
    m = 0.9
    t = sim.targets[m]
    assert t[5] == pytest.approx(m * t[4] + (1 - m) * sim.online[5])
