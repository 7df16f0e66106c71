"""How good the pictures are: attention inside object boxes, masked-patch PSNR, and their baselines.

Attention: DINO's claim (Caron et al. 2021, Fig. 1 and Table 8) is that the CLS attention of a
self-supervised ViT falls on the object. We measure the share of the attention mass inside the
labelled box, both of the plain map and of the map thresholded to the patches holding its top
60% of mass (DINO's visualisation), against a random-init ViT, a centred Gaussian blob (objects
are often centred) and the box's area (uniform attention).

MAE: PSNR over the masked pixels only (He et al. 2022 reconstruct, and are judged on, the hidden
patches), against two fills that use the visible patches alone: their mean colour, and a blur
that spreads them into the holes (normalised convolution).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import Tensor, nn

from sslcore.augment import normalize
from sslcore.models.vit import make_mask
from sslcore.viz.attention import materialised_attention, threshold_mass
from sslcore.viz.mae import panels

if TYPE_CHECKING:
    from sslcore.methods.mae import MAE

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, inclusive, as in ImageNet's annotations


def box_mask(shape: tuple[int, int], box: Box) -> np.ndarray:
    """(H, W) bool, True on the pixels of ``box`` (inclusive corners, clipped to the image)."""
    h, w = shape
    x0, y0, x1, y1 = box
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box {box} has x1 < x0 or y1 < y0")
    out = np.zeros((h, w), dtype=bool)
    out[max(0, y0):min(h, y1 + 1), max(0, x0):min(w, x1 + 1)] = True
    return out


def patch_to_pixels(grid_map: np.ndarray, patch: int) -> np.ndarray:
    """(h, w) per-patch values -> (h*patch, w*patch), each patch's value on all its pixels."""
    return np.repeat(np.repeat(np.asarray(grid_map), patch, 0), patch, 1)


def mass_inside(weights: np.ndarray, inside: np.ndarray) -> float:
    """Share of the (non-negative) ``weights`` on the pixels where ``inside`` is True.

    Both (H, W); a map with no mass at all counts as 0.
    """
    total = float(weights.sum())
    return float(weights[inside].sum()) / total if total > 0 else 0.0


def region_scores(attention: np.ndarray, inside: np.ndarray, patch: int, mass: float = 0.6) -> tuple[float, float]:
    """(plain, thresholded) attention mass inside a region for one (h, w) patch-level attention map.

    ``inside``: (h*patch, w*patch) bool, the object's pixels (its box, or its mask where one is known).
    ``plain``: share of the whole map inside the region. ``thresholded``: the map restricted to the
    patches holding its top ``mass`` (:func:`threshold_mass`), and the share of that inside the region.
    Per-patch values are spread evenly over the patch's pixels, so a patch the region cuts through
    counts in proportion to its covered pixels.
    """
    attention = np.clip(np.asarray(attention, dtype=np.float64), 0, None)
    kept = threshold_mass(attention[None], mass)[0]
    plain = mass_inside(patch_to_pixels(attention, patch), inside)
    return plain, mass_inside(patch_to_pixels(attention * kept, patch), inside)


def box_scores(attention: np.ndarray, box: Box, patch: int, mass: float = 0.6) -> tuple[float, float]:
    """:func:`region_scores` inside ``box``."""
    h, w = np.shape(attention)
    return region_scores(attention, box_mask((h * patch, w * patch), box), patch, mass)


def box_score_table(maps: np.ndarray, boxes: Sequence[Box], patch: int, mass: float = 0.6) -> np.ndarray:
    """(N, 2) :func:`box_scores` (plain, thresholded) of each map of ``maps`` (N, h, w) with its box."""
    if len(maps) != len(boxes):
        raise ValueError(f"{len(maps)} maps for {len(boxes)} boxes")
    return np.array([box_scores(m, b, patch, mass) for m, b in zip(maps, boxes)]).reshape(len(boxes), 2)


def mask_score_table(maps: np.ndarray, masks: np.ndarray, patch: int, mass: float = 0.6) -> np.ndarray:
    """(N, 2) :func:`region_scores` (plain, thresholded) of each map of ``maps`` (N, h, w) with its object
    mask of ``masks`` (N, h*patch, w*patch) bool."""
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps for {len(masks)} masks")
    return np.array([region_scores(m, k, patch, mass) for m, k in zip(maps, masks)]).reshape(len(masks), 2)


def head_mask_scores(maps: np.ndarray, masks: np.ndarray, patch: int, mass: float = 0.6) -> dict[str, float]:
    """Mask scores of per-head maps ``maps`` (N, heads, h, w): of the head mean, and of the best head.

    Returns the mean over images of ``mean_plain``/``mean_top`` (the head-mean map, plain and top-mass)
    and of ``best_plain``/``best_top`` for ``best_head`` (1-based), the head with the highest top-mass
    mean. The best head is chosen on the images it is scored on: read it as an upper bound.
    """
    mean = mask_score_table(maps.mean(1), masks, patch, mass).mean(0)
    per_head = np.stack([mask_score_table(maps[:, k], masks, patch, mass).mean(0) for k in range(maps.shape[1])])
    best = int(per_head[:, 1].argmax())
    return {"mean_plain": float(mean[0]), "mean_top": float(mean[1]), "best_head": best + 1,
            "best_plain": float(per_head[best, 0]), "best_top": float(per_head[best, 1])}


def centred_blob(h: int, w: int, sigma: float) -> np.ndarray:
    """(h, w) isotropic Gaussian centred in the grid, evaluated at cell centres, summing to 1.

    ``sigma`` is in cells. The baseline for "objects tend to be in the middle of the photo".
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    y = (np.arange(h) + 0.5 - h / 2) ** 2
    x = (np.arange(w) + 0.5 - w / 2) ** 2
    g = np.exp(-(y[:, None] + x[None, :]) / (2 * sigma**2))
    return g / g.sum()


def patch_mask_to_pixels(mask: np.ndarray, grid: tuple[int, int], patch: int) -> np.ndarray:
    """MAE's (L,) patch mask (1 = hidden, 0 = visible) -> (h*patch, w*patch) bool, True where hidden."""
    mask = np.asarray(mask).reshape(grid)
    return patch_to_pixels(mask > 0.5, patch)


def masked_psnr(pred: np.ndarray, target: np.ndarray, hidden: np.ndarray, max_db: float = 100.0) -> float:
    """PSNR in dB over the hidden pixels only, for images in [0, 1] (peak 1).

    Args:
        pred, target: (3, H, W) or (H, W, 3) float images in [0, 1], same layout.
        hidden: (H, W) bool, True on the pixels the model did not see.
        max_db: returned for a perfect reconstruction (MSE 0), so averages over images stay finite.
    """
    hidden = np.asarray(hidden, dtype=bool)
    if not hidden.any():
        raise ValueError("no hidden pixel to score")
    channel_first = pred.shape[0] == 3 and pred.shape[-1] != 3
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    sq = (diff**2).sum(0) if channel_first else (diff**2).sum(-1)  # (H, W)
    mse = float(sq[hidden].mean()) / 3
    return max_db if mse == 0 else min(max_db, 10 * math.log10(1.0 / mse))


def mean_fill(image: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """(3, H, W) image with every hidden pixel set to the mean colour of the visible pixels."""
    image, hidden = np.asarray(image, dtype=np.float64), np.asarray(hidden, dtype=bool)
    visible = ~hidden
    if not visible.any():
        raise ValueError("no visible pixel to take a colour from")
    colour = image[:, visible].mean(1)  # (3,)
    return np.where(hidden[None], colour[:, None, None], image)


def blur_fill(image: np.ndarray, hidden: np.ndarray, sigma: float) -> np.ndarray:
    """(3, H, W) image with hidden pixels inpainted by a Gaussian blur of the visible ones.

    Normalised convolution: ``blur(image * visible) / blur(visible)`` is a distance-weighted
    average of the nearby visible pixels; where no visible pixel is within reach (the weight
    underflows) the visible mean colour is used.
    """
    image, hidden = np.asarray(image, dtype=np.float64), np.asarray(hidden, dtype=bool)
    visible = (~hidden).astype(np.float64)
    weight = gaussian_filter(visible, sigma, mode="nearest")
    fill = mean_fill(image, hidden)
    out = image.copy()
    for c in range(image.shape[0]):
        spread = gaussian_filter(image[c] * visible, sigma, mode="nearest")
        out[c] = np.where(hidden, np.where(weight > 1e-6, spread / np.maximum(weight, 1e-6), fill[c]), image[c])
    return out


# ---------------------------------------------------------------------------------------------
# batched measurements over a held-out set
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def head_attention(vit: nn.Module, images: Tensor, block: int = -1, batch: int = 256) -> np.ndarray:
    """(N, heads, h, w) CLS-to-patch attention of ``block``, per head, for (N, 3, S, S) images in [0, 1].

    The batched form of :func:`sslcore.viz.attention.attention_maps`.
    """
    patch = vit.patch_embed.patch_size[0]
    h, w = images.shape[-2] // patch, images.shape[-1] // patch
    was_training = vit.training
    vit.eval()
    out = []
    try:
        for chunk in images.split(batch):
            with materialised_attention(vit.blocks[block]) as captured:
                vit.forward_features(normalize(chunk))
            att = captured[-1][:, :, 0, vit.num_prefix_tokens:].float()  # (B, heads, h*w)
            out.append(att.reshape(len(chunk), -1, h, w).cpu().numpy())
    finally:
        vit.train(was_training)
    return np.concatenate(out)


def head_mean_attention(vit: nn.Module, images: Tensor, block: int = -1, batch: int = 256) -> np.ndarray:
    """(N, h, w) :func:`head_attention` averaged over heads."""
    return head_attention(vit, images, block, batch).mean(1)


def mae_masks(n: int, grid: tuple[int, int], ratio: float, seed: int) -> Tensor:
    """(n, L) seeded random masks (1 = hidden), the same for every model and fill compared on them."""
    return make_mask("random", n, grid, ratio, torch.Generator().manual_seed(seed))


@torch.no_grad()
def reconstruction_psnr(mae: "MAE", images: Tensor, masks: Tensor, batch: int = 256) -> np.ndarray:
    """(N,) PSNR over the hidden pixels of ``mae``'s reconstructions of uint8 images (N, 3, S, S),
    in pixel space as the MAE page shows them (:func:`sslcore.viz.mae.panels`)."""
    grid = (images.shape[-2] // mae.patch, images.shape[-1] // mae.patch)
    was_training = mae.training
    mae.eval()
    out = []
    try:
        for chunk, m in zip(images.float().div(255).split(batch), masks.split(batch)):
            for p in panels(mae.reconstruct(chunk, m)):
                if p.space != "pixels":
                    raise ValueError("a norm-pix MAE reconstructs normalised patches: no pixel PSNR without "
                                     "the hidden patches' own statistics")
                out.append(masked_psnr(p.reconstruction, p.original, patch_mask_to_pixels(p.mask.reshape(-1), grid,
                                                                                          mae.patch)))
    finally:
        mae.train(was_training)
    return np.array(out)


def fill_psnr(images: Tensor, masks: Tensor, patch: int, sigma: float | None = None) -> np.ndarray:
    """(N,) PSNR over the hidden pixels of a fill from the visible ones alone: their mean colour
    (``sigma`` None) or :func:`blur_fill` with ``sigma`` pixels."""
    grid = (images.shape[-2] // patch, images.shape[-1] // patch)
    out = []
    for img, m in zip(images.float().div(255).numpy(), masks.numpy()):
        hidden = patch_mask_to_pixels(m, grid, patch)
        filled = mean_fill(img, hidden) if sigma is None else blur_fill(img, hidden, sigma)
        out.append(masked_psnr(filled, img, hidden))
    return np.array(out)
