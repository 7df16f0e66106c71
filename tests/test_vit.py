"""ViT helpers: patchify against the official MAE code, masks, index bookkeeping, sin-cos embeddings."""

import numpy as np
import pytest
import torch

from sslcore.models.vit import (block_masking, grid_cell, grid_masking, ids_from_mask, make_mask, patchify,
                                random_masking, sincos_pos_embed, unpatchify)


def official_patchify(imgs, p):
    """models_mae.MaskedAutoencoderViT.patchify (square images), verbatim."""
    assert imgs.shape[2] == imgs.shape[3] and imgs.shape[2] % p == 0
    h = w = imgs.shape[2] // p
    x = imgs.reshape(shape=(imgs.shape[0], 3, h, p, w, p))
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(shape=(imgs.shape[0], h * w, p ** 2 * 3))


def official_unpatchify(x, p):
    h = w = int(x.shape[1] ** .5)
    x = x.reshape(shape=(x.shape[0], h, w, p, p, 3))
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(shape=(x.shape[0], 3, h * p, h * p))


def official_random_masking(x, mask_ratio, generator):
    """models_mae.MaskedAutoencoderViT.random_masking, with the noise drawn from ``generator``."""
    N, L, D = x.shape
    len_keep = int(L * (1 - mask_ratio))
    noise = torch.rand(N, L, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
    mask = torch.ones([N, L])
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return x_masked, mask, ids_restore


def official_sincos(embed_dim, grid_h, grid_w):
    """util/pos_embed.get_2d_sincos_pos_embed (numpy), generalised to an h x w grid as its meshgrid reads."""
    def one_d(dim, pos):
        omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.)
        omega = 1. / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.meshgrid(np.arange(grid_w, dtype=np.float32), np.arange(grid_h, dtype=np.float32))  # w goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_h, grid_w])
    return np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)


def test_patchify_equals_official_and_round_trips():
    imgs = torch.randn(2, 3, 32, 32)
    x = patchify(imgs, 4)
    assert x.shape == (2, 64, 48)
    assert torch.equal(x, official_patchify(imgs, 4))
    assert torch.equal(unpatchify(x, 4, (8, 8)), imgs)
    assert torch.equal(unpatchify(x, 4, (8, 8)), official_unpatchify(x, 4))


def test_patchify_non_square_matches_a_loop():
    imgs = torch.randn(2, 3, 12, 20)
    x = patchify(imgs, 4)  # (2, 3*5, 48)
    assert x.shape == (2, 15, 48)
    for i in range(3):
        for j in range(5):
            patch = imgs[:, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4].permute(0, 2, 3, 1).reshape(2, -1)  # (p, p, C)
            assert torch.equal(x[:, i * 5 + j], patch)
    assert torch.equal(unpatchify(x, 4, (3, 5)), imgs)
    with pytest.raises(ValueError, match="multiple"):
        patchify(torch.randn(1, 3, 10, 12), 4)
    with pytest.raises(ValueError, match="grid"):
        unpatchify(x, 4, (5, 3 + 1))


@pytest.mark.parametrize("ratio", [0.75, 0.9, 0.5, 0.3, 0.6])
def test_random_masking_is_the_official_procedure(ratio):
    tokens = torch.randn(4, 64, 8)
    _, official, _ = official_random_masking(tokens, ratio, torch.Generator().manual_seed(3))
    ours = make_mask("random", 4, (8, 8), ratio, torch.Generator().manual_seed(3))
    assert torch.equal(ours, official)
    assert ((ours == 0).sum(1) == int(64 * (1 - ratio))).all()  # 0.9 keeps int(6.39...) = 6


@pytest.mark.parametrize("strategy", ["random", "block"])
@pytest.mark.parametrize("ratio,grid", [(0.75, (8, 8)), (0.9, (8, 8)), (0.4, (14, 14)), (0.75, (6, 10))])
def test_exact_count_per_sample_differs_and_reproducible(strategy, ratio, grid):
    length = grid[0] * grid[1]
    masks = make_mask(strategy, 16, grid, ratio, torch.Generator().manual_seed(0))
    assert masks.shape == (16, length) and masks.dtype == torch.float32
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert ((masks == 0).sum(1) == int(length * (1 - ratio))).all()
    assert len({tuple(m.tolist()) for m in masks}) == 16  # one mask per sample
    assert torch.equal(masks, make_mask(strategy, 16, grid, ratio, torch.Generator().manual_seed(0)))
    assert not torch.equal(masks, make_mask(strategy, 16, grid, ratio, torch.Generator().manual_seed(1)))


def hidden_neighbours(masks, grid):
    """Mean number of hidden 4-neighbours of a hidden patch."""
    m = masks.view(-1, *grid)
    pad = torch.nn.functional.pad(m, (1, 1, 1, 1))
    n = pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]
    return float((n * m).sum() / m.sum())


def test_block_masks_are_blocks():
    g = torch.Generator().manual_seed(0)
    block, rand = block_masking(64, (14, 14), 0.4, g), random_masking(64, 196, 0.4, g)
    # Contiguous rectangles: hidden patches mostly touch hidden patches (random: 4 * 0.4 on average).
    assert hidden_neighbours(block, (14, 14)) > 3.0 > 2.0 > hidden_neighbours(rand, (14, 14))


def test_grid_masking_keeps_one_patch_per_cell():
    masks = grid_masking(32, (8, 8), 0.75, torch.Generator().manual_seed(0))
    assert ((masks == 0).sum(1) == 16).all()
    cells = (1 - masks).view(32, 4, 2, 4, 2).sum((2, 4))  # visible per 2x2 cell
    assert (cells == 1).all()
    phases = {int((1 - m).view(8, 8)[:2, :2].argmax()) for m in masks}
    assert phases == {0, 1, 2, 3}  # the phase is drawn per sample
    odd = grid_masking(32, (7, 5), 0.75, torch.Generator().manual_seed(0))
    assert ((odd == 0).sum(1) == 4 * 3).all()  # ceil(7/2) * ceil(5/2), whatever the phase


def test_grid_cell_choices():
    assert grid_cell(0.75) == (2, 2)
    assert grid_cell(0.5) == (1, 2)
    assert grid_cell(0.9) == (3, 3)
    assert grid_cell(0.0) == (1, 1)
    assert grid_cell(0.95) == (4, 4)


def test_make_mask_validation():
    with pytest.raises(ValueError, match="strategy"):
        make_mask("checkers", 1, (8, 8), 0.5)
    with pytest.raises(ValueError, match="ratio"):
        make_mask("random", 1, (8, 8), 1.0)
    with pytest.raises(ValueError, match="no visible"):
        make_mask("random", 1, (2, 2), 0.8)
    assert make_mask("random", 2, (4, 4), 0.0).sum() == 0


def test_ids_from_mask_gathers_visible_and_restores_order():
    mask = make_mask("block", 5, (6, 6), 0.75, torch.Generator().manual_seed(2))
    x = torch.randn(5, 36, 7)
    ids_keep, ids_restore = ids_from_mask(mask)
    assert ids_keep.shape == (5, 9) and ids_restore.shape == (5, 36)
    for i in range(5):
        visible = (mask[i] == 0).nonzero()[:, 0]
        assert torch.equal(ids_keep[i], visible)  # raster order
    kept = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, 7))
    hidden = torch.stack([x[i][mask[i] == 1] for i in range(5)])
    restored = torch.gather(torch.cat([kept, hidden], 1), 1, ids_restore[..., None].expand(-1, -1, 7))
    assert torch.equal(restored, x)
    with pytest.raises(ValueError, match="same number"):
        ids_from_mask(torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]))


def test_sincos_equals_official():
    for h, w in [(8, 8), (3, 5)]:
        ours = sincos_pos_embed(64, (h, w))
        assert ours.shape == (h * w, 64)
        np.testing.assert_allclose(ours.numpy(), official_sincos(64, h, w), atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_pos_embed(30, (2, 2))
