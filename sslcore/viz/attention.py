"""DINO-style attention maps and patch-feature PCA of a timm ViT.

Follows the procedure of Caron et al. 2021 (DINO, Fig. 1 and its visualisation code): the
self-attention of the CLS query to every patch in one block, per head, optionally thresholded
to keep the patches holding the top ``mass`` of each head's attention.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.data import MAX_ASPECT, DataError, aspect_crop_box, check_image_size

if TYPE_CHECKING:
    from PIL import Image


@contextmanager
def materialised_attention(block: nn.Module) -> Iterator[list[Tensor]]:
    """Turn off ``block.attn``'s fused kernel and capture its softmaxed attention weights.

    Fused attention (scaled_dot_product_attention) never forms the weights; the unfused path
    passes them through ``attn_drop``, where a forward hook sees them. Both are restored on exit.
    """
    attn = block.attn
    captured: list[Tensor] = []
    was_fused = getattr(attn, "fused_attn", False)
    attn.fused_attn = False
    handle = attn.attn_drop.register_forward_hook(lambda mod, inp, out: captured.append(out.detach()))
    try:
        yield captured
    finally:
        handle.remove()
        attn.fused_attn = was_fused


def crop_to_patch_multiple(image: Tensor, patch: int) -> Tensor:
    """Centre-crop (..., H, W) to multiples of ``patch`` (no squashing: the aspect ratio survives).

    Raises:
        DataError: a side is shorter than one patch (e.g. a 32 px patch ViT shown at 64 px).
    """
    h, w = image.shape[-2:]
    nh, nw = (h // patch) * patch, (w // patch) * patch
    if nh == 0 or nw == 0:
        raise DataError(f"At this size the image is {w}x{h} px, less than one {patch} px patch of this ViT "
                        f"along a side: choose a larger size.")
    top, left = (h - nh) // 2, (w - nw) // 2
    return image[..., top:top + nh, left:left + nw]


@dataclass(frozen=True)
class AttentionResult:
    attention: np.ndarray  # (heads, h, w) CLS-to-patch attention of one block, rows sum to <= 1
    features: np.ndarray  # (h, w, D) final-layer patch tokens
    grid: tuple[int, int]  # (h, w) patches
    patch: int


@torch.no_grad()
def cls_attention(model: nn.Module, image: Tensor, block: int = -1) -> AttentionResult:
    """CLS-to-patch attention of ``block`` and the patch features of a timm ViT.

    Args:
        model: a timm ``VisionTransformer`` with ``dynamic_img_size=True`` (any H, W multiple of
            the patch) or an image of its native size.
        image: (3, H, W) normalised, H and W multiples of the patch size.
        block: which block's attention (negative counts from the end).
    """
    patch = model.patch_embed.patch_size[0]
    h, w = image.shape[-2] // patch, image.shape[-1] // patch
    blocks = list(model.blocks)
    target = blocks[block]
    was_training = model.training
    model.eval()
    try:
        with materialised_attention(target) as captured:
            tokens = model.forward_features(image[None])  # (1, prefix + h*w, D)
    finally:
        model.train(was_training)
    prefix = model.num_prefix_tokens
    attn = captured[-1][0, :, 0, prefix:].float()  # (heads, h*w): CLS query row, patch keys
    feats = tokens[0, prefix:].float()
    return AttentionResult(attn.reshape(-1, h, w).cpu().numpy(), feats.reshape(h, w, -1).cpu().numpy(), (h, w), patch)


def attention_maps(model: nn.Module, image: Tensor, block: int = -1) -> np.ndarray:
    """(heads, h, w) CLS-to-patch attention of ``block``; see :func:`cls_attention`."""
    return cls_attention(model, image, block).attention


def threshold_mass(attention: np.ndarray, mass: float = 0.6) -> np.ndarray:
    """Per head, keep the smallest set of patches holding ``mass`` of its attention (DINO Fig. 3).

    attention: (heads, h, w) -> boolean (heads, h, w).
    """
    if not 0 < mass <= 1:
        raise ValueError(f"mass must be in (0, 1], got {mass}")
    heads = attention.reshape(len(attention), -1)
    share = heads / heads.sum(1, keepdims=True)
    order = np.argsort(-share, axis=1)
    cum = np.take_along_axis(share, order, 1).cumsum(1)
    # Keep a patch while the mass before it is below the threshold: the top patch is always kept.
    keep_sorted = (cum - np.take_along_axis(share, order, 1)) < mass
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, 1)
    return keep.reshape(attention.shape)


def upsample(maps: np.ndarray, patch: int, mode: str = "nearest") -> np.ndarray:
    """(C, h, w) patch maps -> (C, h*patch, w*patch) pixels, ``nearest`` or ``bilinear``."""
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be nearest or bilinear, got {mode!r}")
    t = torch.from_numpy(np.asarray(maps, dtype=np.float32))[None]
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(t, scale_factor=patch, mode=mode, **kwargs)[0].numpy()


def pca_rgb(features: np.ndarray) -> np.ndarray:
    """(h, w, D) patch features -> (h, w, 3) in [0, 1]: the first three principal components as RGB.

    The components are the top eigenvectors of the (D, D) covariance, found in torch: on two
    cores a NumPy SVD of the (h*w, D) matrix left BLAS threads spinning that slowed the next
    forward pass by half (benchmarks/viz_latency.py).
    """
    h, w, d = features.shape
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float64)).reshape(-1, d)
    x = x - x.mean(0)
    _, vecs = torch.linalg.eigh(x.T @ x)  # eigenvalues ascending
    comps = F.pad(x @ vecs[:, -3:].flip(1), (0, max(0, 3 - d)))  # (h*w, 3), largest variance first
    lo, hi = comps.min(0).values, comps.max(0).values
    return ((comps - lo) / torch.where(hi > lo, hi - lo, 1)).reshape(h, w, 3).float().numpy()


@dataclass(frozen=True)
class AttentionPanels:
    image: np.ndarray  # (H, W, 3) in [0, 1], cropped to patch multiples
    heads: np.ndarray  # (heads, H, W) attention upsampled to pixels, each head scaled to [0, 1]
    mean: np.ndarray  # (H, W) head-mean attention in [0, 1]
    kept: np.ndarray  # (heads, H, W) bool: patches holding the top ``mass`` of each head
    kept_mean: np.ndarray  # (H, W) bool: patches holding the top ``mass`` of the head-mean attention
    pca: np.ndarray  # (H, W, 3) patch-feature PCA as RGB


def attention_panels(model: nn.Module, image: Tensor, block: int = -1, mass: float = 0.6,
                     mode: str = "nearest") -> AttentionPanels:
    """Everything the attention page draws for one image (3, H, W) in [0, 1], from one forward pass."""
    from sslcore.augment import normalize

    patch = model.patch_embed.patch_size[0]
    image = crop_to_patch_multiple(image, patch)
    res = cls_attention(model, normalize(image[None])[0], block)
    att = upsample(res.attention, patch, mode)
    lo, hi = att.min((1, 2), keepdims=True), att.max((1, 2), keepdims=True)
    heads = (att - lo) / np.where(hi > lo, hi - lo, 1)
    mean = att.mean(0)
    mean = (mean - mean.min()) / max(float(mean.max() - mean.min()), 1e-12)
    # The head mean of CLS rows is itself a distribution over patches: threshold it the same way.
    kept_patches = threshold_mass(np.concatenate([res.attention, res.attention.mean(0, keepdims=True)]), mass)
    kept = upsample(kept_patches.astype(np.float32), patch, "nearest") > 0.5
    pca = upsample(pca_rgb(res.features).transpose(2, 0, 1), patch, mode).transpose(1, 2, 0).clip(0, 1)
    return AttentionPanels(image.permute(1, 2, 0).numpy(), heads, mean, kept[:-1], kept[-1], pca)


def mask_boundary(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The contour of a boolean (H, W) region: its pixels within ``width`` of a pixel outside it.

    The image border does not count as outside, so a region touching the edge is not outlined there.
    """
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    m = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    # Erosion as a min-pool (a max-pool of the complement), replicate-padded so the border is inside.
    k = 2 * width + 1
    eroded = -F.max_pool2d(-F.pad(m, (width,) * 4, mode="replicate"), k, stride=1)
    return (m > 0.5)[0, 0].numpy() & ~(eroded > 0.5)[0, 0].numpy()


def heat(x: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3): a black-red-yellow-white ramp (no colormap dependency)."""
    x = np.clip(x, 0, 1)[..., None]
    return np.clip(np.concatenate([3 * x, 3 * x - 1, 3 * x - 2], -1), 0, 1)


CONTOUR_RGB = (0.0, 1.0, 0.4)  # green: apart from every colour of the heat ramp


def overlay(panels: AttentionPanels, alpha: float, head: int | None = None, contour: bool = True,
            width: int = 1) -> np.ndarray:
    """Attention blended over the image, with the kept region's contour; (H, W, 3) in [0, 1].

    Args:
        head: which head to show (0-based); ``None`` shows the head mean.
        contour: outline the patches holding the top ``mass`` of that attention.
    """
    att, kept = (panels.mean, panels.kept_mean) if head is None else (panels.heads[head], panels.kept[head])
    out = (1 - alpha) * panels.image + alpha * heat(att)
    if contour:
        out = np.where(mask_boundary(kept, width)[..., None], np.asarray(CONTOUR_RGB), out)
    return out


def kept_heads(panels: AttentionPanels) -> np.ndarray:
    """(heads, H, W, 3): each head's attention, bright where its kept patches are, dimmed elsewhere."""
    shown = np.where(panels.kept, 0.35 + 0.65 * panels.heads, 0.15 * panels.heads)
    return np.repeat(shown[..., None], 3, -1)


def resize_longer_side(image: "Image.Image", size: int) -> Tensor:
    """PIL image -> (3, H, W) float in [0, 1] with its longer side ``size`` px, aspect ratio kept.

    An image longer than ``MAX_ASPECT``:1 is first centre-cropped to that ratio
    (:func:`sslcore.data.aspect_crop_box`), so the shorter side keeps ``size / MAX_ASPECT`` px.

    Raises:
        DataError: a side under ``MIN_SIDE`` px (:func:`sslcore.data.check_image_size`).
    """
    check_image_size(*image.size)
    image = image.crop(aspect_crop_box(*image.size, MAX_ASPECT))
    scale = size / max(image.size)
    image = image.convert("RGB").resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


DISPLAY_SIZES = (64, 128, 224, 320, 448)


def display_size(trained: int | None, drawn: bool) -> int:
    """The longer side (of :data:`DISPLAY_SIZES`) to show an image at, for a ViT trained at ``trained`` px.

    A model trained on small images knows objects at that scale: a photo starts at twice its training
    size; a ``shapes`` or digits sample (``drawn``: already at the scale of the data) at its training
    size; 224 when the training size is unknown (hub models).
    """
    if not trained:
        return 224
    return min(DISPLAY_SIZES, key=lambda s: abs(s - (trained if drawn else 2 * trained)))


def attention_grid(model: nn.Module, images: Tensor, mass: float = 0.6, alpha: float = 0.6,
                   min_size: int = 96) -> np.ndarray:
    """The live training preview of a ViT: (H', W', 3) uint8, one column per image of ``images`` (N, 3, S, S).

    ``images``: uint8 or float in [0, 1]. Rows: the image; the last block's head-mean CLS attention over
    it, with the contour of the patches holding ``mass`` of it. Small images are upscaled (nearest) to
    at least ``min_size`` px.
    """
    from sslcore.viz.mae import tile

    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    panels = [attention_panels(model, image.cpu(), mass=mass) for image in x]
    rows = [[p.image for p in panels], [overlay(p, alpha) for p in panels]]
    return tile(rows, scale=max(1, -(-min_size // panels[0].image.shape[0])))

