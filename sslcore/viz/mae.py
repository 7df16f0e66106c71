"""MAE reconstructions as the paper shows them (He et al. 2021, Fig. 2-4).

Panels: the original, the masked input, the reconstruction of every patch, the reconstruction
with the visible patches pasted back, and a per-patch error heatmap on the hidden patches.

Norm-pix models (trained with ``norm_pix_loss``) predict each patch normalised by its own mean
and variance, which the image does not give away for a hidden patch. Their panels are shown in
that normalised space by default; de-normalising with the hidden patches' own statistics is an
option, and the result then says that it uses ground-truth statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sslcore.augment import denormalize
from sslcore.data import MAX_ASPECT, aspect_crop_box, check_image_size
from sslcore.models.vit import make_mask, patchify, unpatchify
from sslcore.viz.attention import crop_to_patch_multiple

if TYPE_CHECKING:
    from PIL import Image

    from sslcore.methods.mae import MAE, MAEReconstruction

HIDDEN_GREY = 0.5
DISPLAY_STD = 0.25  # a per-patch normalised value v is shown as 0.5 + 0.25 v: +-2 std fill [0, 1]
NORM_PIX_EPS = 1e-6  # the official norm_pix_loss epsilon


@dataclass(frozen=True)
class MAEPanels:
    """One image's reconstruction panels, all (H, W, 3) float32 in [0, 1] unless said otherwise.

    Attributes:
        original: the image the model saw (after :func:`prepare_image`).
        target: what the model regresses, as displayed: the original in pixel space, the
            per-patch normalised original (``0.5 + 0.25 v``) in normalised space.
        masked: the original with hidden patches grey: the encoder's input.
        reconstruction: the prediction of every patch, in ``space``.
        pasted: ``reconstruction`` on hidden patches, ``target`` on visible ones.
        error: (h, w) per-patch mean squared error on hidden patches, 0 on visible ones; in pixel
            space on the displayed [0, 1] values, in normalised space on the normalised values
            (the training loss per patch).
        psnr: dB over the hidden pixels in pixel space (peak 1); None in normalised space or
            when nothing is hidden.
        mask: (h, w) 1 hidden, 0 visible.
        patch: patch side in pixels.
        space: "pixels" or "normalised patches".
        uses_ground_truth_statistics: the prediction was de-normalised with each hidden patch's
            true mean and variance (information the model did not have).
        label: one sentence saying what the panels show, naming ground-truth statistics when used.
    """

    original: np.ndarray
    target: np.ndarray
    masked: np.ndarray
    reconstruction: np.ndarray
    pasted: np.ndarray
    error: np.ndarray
    psnr: float | None
    mask: np.ndarray
    patch: int
    space: str
    uses_ground_truth_statistics: bool
    label: str


def to_tensor(image: Image.Image | np.ndarray | Tensor) -> Tensor:
    """A PIL image, an (H, W, 3) uint8 array or a (3, H, W) uint8/[0, 1] tensor -> (3, H, W) float in [0, 1]."""
    if isinstance(image, Tensor):
        x = image
    else:
        arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise ValueError(f"expected an (H, W, 3) image, got shape {arr.shape}")
        x = torch.from_numpy(np.array(arr)).permute(2, 0, 1)  # a copy: PIL's buffer is read-only
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {tuple(x.shape)}")
    return x.float() / 255 if x.dtype == torch.uint8 else x.float().clamp(0, 1)


def prepare_image(model: MAE, image: Image.Image | np.ndarray | Tensor, short_side: int | None = None) -> Tensor:
    """The (3, H, W) [0, 1] image :func:`mae_reconstruct` feeds ``model``, H and W multiples of its patch.

    With a ``dynamic_img_size`` backbone (sslcore's ViTs) the aspect ratio is kept: the image is
    centre-cropped to at most ``MAX_ASPECT`` (4) times its shorter side
    (:func:`sslcore.data.aspect_crop_box`: cropping first bounds the memory and the token count),
    resized (antialiased) so that its shorter side is ``short_side`` (default: the model's
    training size, the scale it learned), and centre-cropped to multiples of the patch.
    Otherwise it is centre-cropped to a square and resized to the model's size (no squashing
    either way).

    Raises:
        DataError: a side under ``MIN_SIDE`` px (:func:`sslcore.data.check_image_size`).
    """
    x = to_tensor(image)
    check_image_size(x.shape[-1], x.shape[-2])
    size, patch = model.cfg.image_size, model.patch
    if getattr(model.backbone, "dynamic_img_size", False):
        short = short_side or size
        if short < patch:
            raise ValueError(f"short_side {short} is smaller than one {patch}px patch")
        left, top, right, bottom = aspect_crop_box(x.shape[-1], x.shape[-2], MAX_ASPECT)
        x = x[:, top:bottom, left:right]
        h, w = x.shape[-2:]
        scale = short / min(h, w)
        new = (max(short, round(h * scale)), max(short, round(w * scale)))
        if new != (h, w):
            x = F.interpolate(x[None], size=new, mode="bilinear", antialias=True, align_corners=False)[0]
        return crop_to_patch_multiple(x, patch).clamp(0, 1)
    side = min(x.shape[-2:])
    x = crop_to_patch_multiple(x, side)  # the centre square
    if side != size:
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return x.clamp(0, 1)


def user_mask(mask: np.ndarray | Tensor, grid: tuple[int, int]) -> Tensor:
    """A user's mask as (1, L) float, 0 keep, 1 hide; accepts (L,), (1, L) or (h, w) of 0/1 or booleans."""
    m = torch.as_tensor(np.asarray(mask)).float()
    h, w = grid
    if m.shape not in ((h * w,), (1, h * w), (h, w)):
        raise ValueError(f"mask must be (L,), (1, L) or (h, w) for a {h}x{w} grid, got {tuple(m.shape)}")
    if not ((m == 0) | (m == 1)).all():
        raise ValueError("mask values must be 0 (keep) or 1 (hide)")
    return m.reshape(1, h * w)


def panels(rec: MAEReconstruction, denormalize_with_hidden_stats: bool = False) -> list[MAEPanels]:
    """:class:`MAEPanels` for every image of a reconstruction (see the module docstring for norm-pix)."""
    if denormalize_with_hidden_stats and not rec.norm_pix:
        raise ValueError("de-normalising with hidden-patch statistics only applies to norm-pix models")
    p, grid = rec.patch, rec.grid
    target, pred, mask = rec.target.cpu(), rec.pred.cpu(), rec.mask.cpu()  # (N, L, P), (N, L, P), (N, L)
    original = rec.images.cpu().float()  # (N, 3, H, W)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    normalised_space = rec.norm_pix and not denormalize_with_hidden_stats
    if normalised_space:
        target_norm = (target - mean) / (var + NORM_PIX_EPS).sqrt()
        err = ((pred - target_norm) ** 2).mean(-1)  # (N, L)
        shown_target = (0.5 + DISPLAY_STD * unpatchify(target_norm, p, grid)).clamp(0, 1)
        shown_pred = (0.5 + DISPLAY_STD * unpatchify(pred, p, grid)).clamp(0, 1)
        label = ("Norm-pix model: original and reconstruction shown in per-patch normalised space "
                 "(each patch's own mean and variance removed), as the model predicts them.")
    else:
        if rec.norm_pix:
            pred = pred * (var + NORM_PIX_EPS).sqrt() + mean
            label = ("Uses ground-truth statistics: each hidden patch's prediction is de-normalised with the "
                     "original patch's own mean and variance, which the model never saw.")
        else:
            label = "Pixel reconstruction: the model predicts the hidden patches' pixels from the visible ones."
        shown_target = original
        shown_pred = denormalize(unpatchify(pred, p, grid))  # clamped to [0, 1]
        err = ((patchify(shown_pred, p) - patchify(shown_target, p)) ** 2).mean(-1)
    err = err * mask
    hidden_px = unpatchify(mask[..., None].expand(-1, -1, p * p * 3), p, grid) > 0  # (N, 3, H, W)
    masked = torch.where(hidden_px, torch.full_like(original, HIDDEN_GREY), original)
    pasted = torch.where(hidden_px, shown_pred, shown_target)

    def hwc(t: Tensor) -> np.ndarray:
        return t.permute(1, 2, 0).numpy().astype(np.float32)

    out = []
    for i in range(len(original)):
        hidden = float(mask[i].sum())
        psnr = None
        if not normalised_space and hidden:
            mse = float(err[i].sum()) / hidden  # patches have equal size: the mean over hidden pixels
            psnr = 10 * math.log10(1 / max(mse, 1e-12))
        out.append(MAEPanels(
            original=hwc(original[i]), target=hwc(shown_target[i]), masked=hwc(masked[i]),
            reconstruction=hwc(shown_pred[i]), pasted=hwc(pasted[i]), error=err[i].reshape(grid).numpy(),
            psnr=psnr, mask=mask[i].reshape(grid).numpy(), patch=p,
            space="normalised patches" if normalised_space else "pixels",
            uses_ground_truth_statistics=rec.norm_pix and denormalize_with_hidden_stats, label=label))
    return out


def _device(model: MAE) -> torch.device:
    return next(model.parameters()).device


def _reconstruct(model: MAE, images: Tensor, mask: Tensor) -> MAEReconstruction:
    was_training = model.training
    model.eval()
    try:
        return model.reconstruct(images.to(_device(model)), mask.to(_device(model)))
    finally:
        model.train(was_training)


def mae_reconstruct(model: MAE, image: Image.Image | np.ndarray | Tensor, mask_ratio: float = 0.75,
                    strategy: str = "random", seed: int = 0, mask: np.ndarray | Tensor | None = None,
                    denormalize_with_hidden_stats: bool = False, short_side: int | None = None) -> MAEPanels:
    """Hide patches of ``image`` and show what ``model`` fills in.

    Args:
        model: a trained :class:`~sslcore.methods.mae.MAE` (encoder and decoder).
        image: PIL image, (H, W, 3) uint8 array, or (3, H, W) uint8 / float [0, 1] tensor; sized
            by :func:`prepare_image` (aspect ratio kept with sslcore's ViTs).
        mask_ratio, strategy, seed: the mask, from :func:`sslcore.models.vit.make_mask`.
        mask: an explicit mask instead, (L,), (1, L) or (h, w), 1 hidden, for the grid of the
            prepared image (``prepare_image(model, image).shape[-2:] // model.patch``).
        denormalize_with_hidden_stats: norm-pix models only: show pixels by giving each hidden
            patch the original's mean and variance (flagged ``uses_ground_truth_statistics``).
        short_side: the prepared image's shorter side (default: the model's training size).
    """
    x = prepare_image(model, image, short_side)
    grid = (x.shape[-2] // model.patch, x.shape[-1] // model.patch)
    if mask is None:
        m = make_mask(strategy, 1, grid, mask_ratio, torch.Generator().manual_seed(seed))
    else:
        m = user_mask(mask, grid)
    return panels(_reconstruct(model, x[None], m), denormalize_with_hidden_stats)[0]


def tile(rows: list[list[np.ndarray]], scale: int = 1, gap: int = 2) -> np.ndarray:
    """Rows of equal-size (H, W, 3) [0, 1] images -> one (H', W', 3) uint8 grid, white gaps, nearest upscaling."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    sh, sw = h * scale, w * scale
    out = np.full((len(rows) * (sh + gap) - gap, cols * (sw + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            big = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
            out[i * (sh + gap):i * (sh + gap) + sh, j * (sw + gap):j * (sw + gap) + sw] = \
                np.round(np.clip(big, 0, 1) * 255).astype(np.uint8)
    return out


@torch.no_grad()
def preview_grid(model: MAE, images: Tensor, seed: int = 0, min_size: int = 96) -> np.ndarray:
    """The live training preview: (H', W', 3) uint8, one column per image of ``images`` (N, 3, S, S).

    ``images``: uint8 or float in [0, 1].

    Rows: original, masked input, reconstruction, reconstruction with visible patches pasted
    back, for the model's own mask strategy and ratio, one fixed-seed mask per image. Small
    images are upscaled (nearest) to at least ``min_size`` px.
    """
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    grid = (x.shape[-2] // model.patch, x.shape[-1] // model.patch)
    mask = make_mask(model.cfg.mask_strategy, len(x), grid, model.cfg.mask_ratio, torch.Generator().manual_seed(seed))
    ps = panels(_reconstruct(model, x, mask))
    rows = [[getattr(p, name) for p in ps] for name in ("original", "masked", "reconstruction", "pasted")]
    return tile(rows, scale=max(1, math.ceil(min_size / x.shape[-2])))
