import math

import numpy as np
import pytest

from sslcore.concepts import (COSINE_PRESETS, OVERLAP_OPS, augmentation_overlap, cosine_similarity,
                              coverage_uniformity, draw_masks, info_nce_terms, mask_study, nearest_visible_distance,
                              negative_weight_stats, nt_xent_explorer, simulate_ema, single_op_recipe,
                              steady_state_lag)
from sslcore.data import make_shapes


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


def test_negative_weight_stats_by_hand():
    # Weights exp(s / T) at T = 0.5: (e, 1, 1, 1) / (e + 3); the hardest quarter is the first one.
    share, effective = negative_weight_stats(np.array([0.0, 0.5, 0.0, 0.0]), 0.5, hard_fraction=0.25)
    p = np.array([math.e, 1, 1, 1]) / (math.e + 3)
    assert share == pytest.approx(math.e / (math.e + 3))
    assert effective == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    # Equal similarities: every negative counts, the hardest 10% of 30 (3 of them) get 10%.
    share, effective = negative_weight_stats(np.zeros(30), 0.1)
    assert (share, effective) == (pytest.approx(0.1), pytest.approx(30))
    with pytest.raises(ValueError, match="temperature"):
        negative_weight_stats(np.zeros(3), 0.0)


def test_nt_xent_explorer_temperature_and_batch():
    temps = np.array([0.02, 0.1, 0.5, 1.0])
    ex = nt_xent_explorer(temps, [8, 256])
    assert ex.loss.shape == ex.hard_share.shape == ex.effective_negatives.shape == (2, 4)
    assert (ex.loss[1] > ex.loss[0]).all()  # more negatives, higher loss at a fixed positive similarity
    assert (np.diff(ex.hard_share, axis=1) < 0).all()  # hotter: less weight on the hardest negatives
    assert (np.diff(ex.effective_negatives, axis=1) > 0).all()
    n_neg = np.array([14, 510])
    assert (ex.effective_negatives[:, -1] > 0.95 * n_neg).all()  # T=1 on near-orthogonal negatives: ~uniform
    assert (ex.effective_negatives[:, 0] < 0.2 * n_neg).all()  # T=0.02: a handful take the gradient
    # Each cell is the InfoNCE of the anchor: identical negatives at cos 0 give the closed form.
    loss, _ = info_nce_terms(0.8, np.zeros(14), 0.1)
    assert loss == pytest.approx(math.log(1 + 14 * math.exp(-8)))


def test_ema_trade_off():
    sim = simulate_ema(steps=3000)
    ms = sorted(sim.lag)
    assert all(sim.lag[a] < sim.lag[b] for a, b in zip(ms, ms[1:]))  # staler with higher momentum
    assert all(sim.jitter[a] > sim.jitter[b] for a, b in zip(ms, ms[1:]))  # but steadier
    m = 0.9
    t = sim.targets[m]
    assert t[5] == pytest.approx(m * t[4] + (1 - m) * sim.online[5])


def test_ema_lag_matches_the_steady_state_formula():
    sim = simulate_ema((0.9, 0.99), steps=3000, noise=0.0, drift=0.01)
    for m in (0.9, 0.99):
        assert sim.online[-1] - sim.targets[m][-1] == pytest.approx(steady_state_lag(m, 0.01), rel=1e-6)
    assert steady_state_lag(0.99, 0.01) == pytest.approx(0.99)
    with pytest.raises(ValueError):
        steady_state_lag(1.0, 0.01)


def checkerboard(h=8, w=8):
    return np.array([(r + c) % 2 for r in range(h) for c in range(w)], dtype=float)


def test_nearest_visible_distance_by_hand():
    assert nearest_visible_distance(checkerboard(), (8, 8)) == 1.0  # every hidden patch touches a visible one
    assert nearest_visible_distance(np.array([0, 1, 1, 1.0]), (1, 4)) == pytest.approx((1 + 2 + 3) / 3)
    centre_only = np.ones(9)
    centre_only[4] = 0
    assert nearest_visible_distance(centre_only, (3, 3)) == pytest.approx((4 + 4 * math.sqrt(2)) / 8)
    assert nearest_visible_distance(np.zeros(16), (4, 4)) == 0.0
    # A batch is averaged over all its hidden patches, not over masks.
    both = np.stack([np.array([0, 1, 1, 1.0]), np.array([0, 1, 0, 0.0])])
    assert nearest_visible_distance(both, (1, 4)) == pytest.approx((1 + 2 + 3 + 1) / 4)
    with pytest.raises(ValueError, match="visible"):
        nearest_visible_distance(np.ones(4), (2, 2))
    with pytest.raises(ValueError, match="grid"):
        nearest_visible_distance(np.zeros(5), (2, 2))


def test_coverage_uniformity_by_hand():
    assert coverage_uniformity(checkerboard(), (8, 8)) == pytest.approx(1.0)
    clumped = np.ones((8, 8))
    clumped[:2, :2] = 0  # all four visible patches in one 2x2 area
    assert coverage_uniformity(clumped.ravel(), (8, 8)) == pytest.approx(0.0)
    half = np.ones((8, 8))
    half[:2, :4] = 0  # eight visible patches over two areas of sixteen: log 2 / log 8
    assert coverage_uniformity(half.ravel(), (8, 8)) == pytest.approx(math.log(2) / math.log(8))


def test_block_masks_are_harder_than_random_at_the_same_ratio():
    block = np.zeros((8, 8))
    block[:6, :6] = 1  # 36 of 64 hidden in one block
    random = draw_masks("random", 36 / 64, (8, 8), n=32, seed=0)
    assert (random.sum(1) == 36).all()
    assert nearest_visible_distance(block.ravel(), (8, 8)) > 1.5 > nearest_visible_distance(random, (8, 8))
    assert coverage_uniformity(block.ravel(), (8, 8)) < coverage_uniformity(random, (8, 8))


def test_mask_study_orders_the_strategies_as_mae_argues():
    stats = {s.strategy: s for s in mask_study(ratios=(0.75,), n=32)}
    assert {s.actual_ratio for s in stats.values()} == {0.75}
    # Grid at 75% keeps one patch per 2x2 cell: two hidden neighbours at 1, the diagonal one at sqrt(2).
    assert stats["grid"].difficulty == pytest.approx((2 + math.sqrt(2)) / 3)
    assert stats["grid"].uniformity == pytest.approx(1.0)
    assert stats["block"].difficulty > stats["random"].difficulty > stats["grid"].difficulty
    assert stats["block"].uniformity < stats["random"].uniformity < stats["grid"].uniformity


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(256, 32, seed=0).images


def test_overlap_matrix_properties(shapes):
    m = augmentation_overlap(shapes, seed=0)
    ops = list(OVERLAP_OPS)
    assert m.shape == (len(ops), len(ops))
    for deterministic in ("identity", "flip", "grayscale"):  # applied with p=1 both views are the same
        i = ops.index(deterministic)
        assert m[i, i] == pytest.approx(1.0, abs=1e-4)
    # Symmetric up to sampling noise: crop pairs vary a lot per image, a standard error of ~0.02 here.
    assert np.abs(m - m.T).max() < 0.1
    crop = ops.index("crop")
    assert m[crop, crop] < 0.7 and m[crop, crop] == m.diagonal().min()  # two crops share the least
    assert (m <= 1 + 1e-6).all() and (m[np.triu_indices(len(ops), 1)] < 0.999).all()


def test_overlap_with_ops_switched_off_is_identity(shapes):
    m = augmentation_overlap(shapes, ops=("identity", "flip", "jitter", "blur", "grayscale"), p=0.0)
    assert np.allclose(m, 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="unknown op"):
        single_op_recipe("rotate", 32)
