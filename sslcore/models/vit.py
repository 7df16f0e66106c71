"""ViT helpers for masked image modelling: patches, masks and the index bookkeeping between them.

Conventions of the official MAE code (He et al. 2021, arXiv:2111.06377): images ``(N, C, H, W)``;
patch tokens ``(N, L, p*p*C)`` in raster order over an ``(h, w)`` grid, ``L = h*w``, each patch
flattened as ``(p, p, C)``; masks ``(N, L)`` float, 0 keep, 1 remove.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MASK_STRATEGIES = ("random", "block", "grid")


def patchify(imgs: Tensor, patch: int) -> Tensor:
    """(N, C, H, W) -> (N, L, patch*patch*C); H and W multiples of ``patch`` (non-square grids too)."""
    n, c, height, width = imgs.shape
    if height % patch or width % patch:
        raise ValueError(f"image {height}x{width} is not a multiple of the {patch}px patch")
    h, w = height // patch, width // patch
    x = imgs.reshape(n, c, h, patch, w, patch)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, h * w, patch * patch * c)


def unpatchify(x: Tensor, patch: int, grid: tuple[int, int], channels: int = 3) -> Tensor:
    """(N, L, patch*patch*C) -> (N, C, h*patch, w*patch); inverse of :func:`patchify` for ``grid = (h, w)``."""
    h, w = grid
    n, length, dim = x.shape
    if length != h * w or dim != patch * patch * channels:
        raise ValueError(f"tokens {tuple(x.shape)} do not fit a {h}x{w} grid of {patch}px patches "
                         f"with {channels} channels")
    x = x.reshape(n, h, w, patch, patch, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(n, channels, h * patch, w * patch)


def num_visible(length: int, ratio: float) -> int:
    """Patches kept by random and block masking: ``int(L * (1 - ratio))``, the official MAE count."""
    return int(length * (1 - ratio))


def random_masking(n: int, length: int, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """MAE's per-sample random masking: argsort of uniform noise, keep the first ``int(L*(1-ratio))``.

    Returns the (n, L) mask, 0 keep, 1 remove, on the generator's device.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.rand(n, length, generator=generator, device=device)  # (n, L) in [0, 1)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(n, length, device=device)
    mask[:, :num_visible(length, ratio)] = 0
    return torch.gather(mask, 1, ids_restore)  # unshuffle into patch order


def block_masking(n: int, grid: tuple[int, int], ratio: float, generator: torch.Generator | None = None,
                  min_area: int | None = None) -> Tensor:
    """BEiT's blockwise masking (Bao et al. 2021, Algorithm 1) with an exact count.

    Per sample, rectangles are masked until ``L - int(L*(1-ratio))`` patches are hidden. Each
    rectangle, as in BEiT, has an area drawn uniformly in ``[min_area, still to mask]`` and an
    aspect ratio log-uniform in ``[0.3, 1/0.3]``. Two changes make the count exact and the loop
    finite: a rectangle is placed over a randomly chosen still-visible patch (so each one hides
    at least one new patch), and when it would hide more than still needed only its first new
    patches in raster order are hidden (the last block may be a partial rectangle).

    Args:
        n: masks to draw.
        grid: (h, w) patches.
        ratio: fraction to hide.
        generator: source of randomness (its device is the mask's).
        min_area: smallest rectangle in patches; default BEiT's 16 of 196 scaled to ``L``.

    Returns:
        (n, L) mask, 0 keep, 1 remove.
    """
    h, w = grid
    length = h * w
    device = generator.device if generator is not None else torch.device("cpu")
    to_mask = length - num_visible(length, ratio)
    min_area = max(1, round(16 / 196 * length)) if min_area is None else min_area
    log_lo, log_hi = math.log(0.3), math.log(1 / 0.3)
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        m, count = masks[i], 0
        while count < to_mask:
            left_to_mask = to_mask - count
            u_area, u_aspect, u_anchor, u_top, u_left = torch.rand(5, generator=generator, device=device).tolist()
            lo = min(min_area, left_to_mask)
            area = lo + u_area * (left_to_mask - lo)
            aspect = math.exp(log_lo + u_aspect * (log_hi - log_lo))
            bh = min(h, max(1, round(math.sqrt(area * aspect))))
            bw = min(w, max(1, round(math.sqrt(area / aspect))))
            visible = (~m).flatten().nonzero()[:, 0]
            anchor = int(visible[min(int(u_anchor * len(visible)), len(visible) - 1)])
            ar, ac = divmod(anchor, w)
            # Top-left corners that keep the rectangle on the grid and over the anchor patch.
            top_lo, top_hi = max(0, ar - bh + 1), min(ar, h - bh)
            left_lo, left_hi = max(0, ac - bw + 1), min(ac, w - bw)
            top = top_lo + min(int(u_top * (top_hi - top_lo + 1)), top_hi - top_lo)
            left = left_lo + min(int(u_left * (left_hi - left_lo + 1)), left_hi - left_lo)
            new = (~m[top:top + bh, left:left + bw]).nonzero()[:left_to_mask]  # (k, 2), raster order
            m[top + new[:, 0], left + new[:, 1]] = True
            count += len(new)
    return masks.flatten(1).float().to(device)


def grid_cell(ratio: float) -> tuple[int, int]:
    """The (rows, cols) cell of grid masking for ``ratio``: one patch kept per cell.

    Among cells of 1-4 by 1-4 patches (rows <= cols), the one whose kept fraction ``1/(rows*cols)``
    is closest to ``1 - ratio``; ties go to the squarer cell. 0.75 gives (2, 2), MAE's grid-wise
    sampling (sec. 4.1, Fig. 6); 0.5 gives (1, 2); 0.9 gives (3, 3); 0 gives (1, 1).
    """
    keep = 1 - ratio
    cells = [(a, b) for a in range(1, 5) for b in range(a, 5)]
    return min(cells, key=lambda c: (abs(1 / (c[0] * c[1]) - keep), c[1] - c[0]))


def grid_masking(n: int, grid: tuple[int, int], ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """Regular masking: keep one patch per :func:`grid_cell` ``(a, b)`` cell, at the same place in every cell.

    Where in the cell (the phase) is drawn per sample, among the phases that keep the most
    patches, so every sample keeps exactly ``ceil(h/a) * ceil(w/b)`` patches. The mask ratio is
    the pattern's own, ``1 - kept / L``: it equals ``ratio`` only when ``ratio = 1 - 1/(a*b)``
    and ``a | h``, ``b | w`` (0.75 on an 8x8 grid keeps exactly 16 of 64).

    Returns:
        (n, L) mask, 0 keep, 1 remove.
    """
    h, w = grid
    a, b = grid_cell(ratio)
    device = generator.device if generator is not None else torch.device("cpu")
    # Phases below (h - 1) % a + 1 keep ceil(h / a) rows (likewise columns).
    u = torch.rand(n, 2, generator=generator, device=device)
    dr = (u[:, 0] * ((h - 1) % a + 1)).long()  # (n,)
    dc = (u[:, 1] * ((w - 1) % b + 1)).long()
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    keep = ((rows[None, :, None] % a) == dr[:, None, None]) & ((cols[None, None, :] % b) == dc[:, None, None])
    return (~keep).flatten(1).float()  # (n, L)


def make_mask(strategy: str, n: int, grid: tuple[int, int], ratio: float,
              generator: torch.Generator | None = None) -> Tensor:
    """Masks for ``n`` images on an ``(h, w)`` patch grid: (n, L) float, 0 keep, 1 remove.

    Args:
        strategy: "random" (MAE), "block" (BEiT) or "grid" (regular); see :func:`random_masking`,
            :func:`block_masking` and :func:`grid_masking`. Random and block keep exactly
            ``int(L * (1 - ratio))`` patches per sample; grid keeps its pattern's count.
        n: number of masks.
        grid: (h, w) patches.
        ratio: fraction of patches to hide, in [0, 1).
        generator: explicit randomness; the same seed gives the same masks. Masks are made on
            its device (CPU without one).
    """
    if strategy not in MASK_STRATEGIES:
        raise ValueError(f"unknown mask strategy {strategy!r}; choose from {MASK_STRATEGIES}")
    if not 0 <= ratio < 1:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    h, w = grid
    if n < 1 or h < 1 or w < 1:
        raise ValueError(f"need n >= 1 and a non-empty grid, got n={n}, grid={grid}")
    if strategy != "grid" and num_visible(h * w, ratio) < 1:
        raise ValueError(f"mask ratio {ratio} leaves no visible patch of {h * w}")
    if strategy == "random":
        return random_masking(n, h * w, ratio, generator)
    if strategy == "block":
        return block_masking(n, grid, ratio, generator)
    return grid_masking(n, grid, ratio, generator)


def ids_from_mask(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Gather and restore indices for a mask of any strategy.

    Args:
        mask: (N, L), 0 keep, 1 remove; every row keeps the same number of patches.

    Returns:
        ids_keep: (N, L_keep) indices of visible patches in raster order, to gather encoder tokens.
        ids_restore: (N, L) inverse of the (visible first, then hidden) order: gathering
            ``cat([visible tokens, mask tokens])`` with it puts every token back at its patch.
    """
    keep_counts = (mask == 0).sum(1)
    if mask.dim() != 2 or (keep_counts != keep_counts[0]).any():
        raise ValueError("mask must be (N, L) with the same number of visible patches in every row, "
                         f"got shape {tuple(mask.shape)} and counts {keep_counts.tolist()}")
    ids_shuffle = torch.argsort(mask, dim=1, stable=True)  # visible first, each group in raster order
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return ids_shuffle[:, :int(keep_counts[0])], ids_restore


def sincos_pos_embed(dim: int, grid: tuple[int, int]) -> Tensor:
    """Fixed 2-D sine-cosine position embedding (MAE's ``get_2d_sincos_pos_embed``): (h*w, dim).

    The first half of the channels encodes the column, the second the row, each as
    ``[sin(pos * omega), cos(pos * omega)]`` with ``omega_k = 10000^(-k / (dim/4))``, exactly as
    the official code lays them out. Any grid size: nothing is learned, nothing to resample.
    """
    if dim % 4:
        raise ValueError(f"sin-cos embedding dimension must be a multiple of 4, got {dim}")
    h, w = grid
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))  # (dim/4,)
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")

    def embed_1d(pos: Tensor) -> Tensor:
        out = pos.flatten()[:, None] * omega[None]  # (L, dim/4)
        return torch.cat([out.sin(), out.cos()], dim=1)

    return torch.cat([embed_1d(cols), embed_1d(rows)], dim=1).float()
