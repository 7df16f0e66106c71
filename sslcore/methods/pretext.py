"""What the five classic pretext tasks share: the task batch, patch layouts and crops, feature helpers.

A pretext task turns unlabelled images into a supervised problem whose labels come for free
(rotation angle, tile order, patch position, colour, missing pixels). Each task module exposes
one ``make_task(images, generator, cfg) -> PretextBatch`` used both for training and by the
Pretext page, so the preview shows the very inputs and labels the network trains on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.models.backbones import is_vit
from sslcore.models.heads import mlp


@dataclass
class PretextBatch:
    """One batch of a pretext task: what the network sees and what it must predict.

    Attributes:
        inputs: ImageNet-normalised network inputs, (N, 3, s, s) for one image per sample or
            (N, K, 3, s, s) for K patches per sample (jigsaw tiles, relpos pairs).
        targets: (N,) int64 class labels, or a dense target (N, C, h, w).
        source: (B, 3, S, S) in [0, 1]: the images the task was cut from (after the random crop).
        boxes: (B, K, 4) pixel boxes ``(x0, y0, x1, y1)`` of the K patches in ``source``.
        mask: (B, 1, S, S), 1 inside the hole to reconstruct, 0 elsewhere.
    """

    inputs: Tensor
    targets: Tensor
    source: Tensor
    boxes: Tensor | None = None
    mask: Tensor | None = None


def check_fraction(name: str, value: float, lo: float = 0.0, hi: float = 1.0) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")


# ---------------------------------------------------------------------------------------------
# 3x3 patch layouts (jigsaw, relative position)
# ---------------------------------------------------------------------------------------------
def check_layout(patch: float, gap: float, jitter: float) -> None:
    """Validate a 3x3 layout given as fractions of the image side (see :func:`grid_boxes`)."""
    if patch <= 0 or gap < 0 or jitter < 0:
        raise ValueError(f"need patch > 0, gap >= 0, jitter >= 0, got {patch}, {gap}, {jitter}")
    if jitter > gap / 2:
        raise ValueError(f"jitter {jitter} > gap / 2 = {gap / 2}: neighbouring patches could overlap and share edges")
    if 3 * patch + 2 * gap + 2 * jitter > 1 + 1e-9:
        raise ValueError(f"3 patches ({patch}) + 2 gaps ({gap}) + 2 jitters ({jitter}) exceed the image side")


def grid_boxes(n: int, size: int, patch: float, gap: float, jitter: float, generator: torch.Generator) -> Tensor:
    """Boxes of a 3x3 grid of square patches, separated by gaps, each shifted by a random jitter.

    All lengths are fractions of the image side ``size``. The whole grid sits at a random place
    in the image, drawn independently of any label, and each patch then moves by up to
    ``jitter`` in x and y: the gap keeps neighbouring patches from sharing an edge the network
    could continue (Doersch et al. 2015; Noroozi & Favaro 2016), the jitter
    keeps it from matching straight lines across the gap.

    Returns:
        (n, 9, 4) float boxes ``(x0, y0, x1, y1)`` in pixels, row-major cell order.
    """
    check_layout(patch, gap, jitter)
    dev = generator.device
    span = 3 * patch + 2 * gap
    origin = jitter + torch.rand(n, 1, 2, generator=generator, device=dev) * (1 - span - 2 * jitter)  # (n, 1, 2)
    cell = torch.arange(3, device=dev, dtype=torch.float32) * (patch + gap)
    offsets = torch.stack(torch.meshgrid(cell, cell, indexing="ij"), -1).flip(-1).reshape(1, 9, 2)  # (x, y)
    shift = (torch.rand(n, 9, 2, generator=generator, device=dev) * 2 - 1) * jitter
    top_left = origin + offsets + shift  # (n, 9, 2)
    return torch.cat([top_left, top_left + patch], -1) * size


def crop_boxes(images: Tensor, boxes: Tensor, out_size: int) -> Tensor:
    """Crop and resize square boxes in one bilinear resampling.

    Args:
        images: (B, C, H, W) float.
        boxes: (B, K, 4) pixel boxes ``(x0, y0, x1, y1)``; sub-pixel positions are interpolated.
        out_size: side of every crop after resizing.

    Returns:
        (B, K, C, out_size, out_size).
    """
    b, c, h, w = images.shape
    k = boxes.shape[1]
    bx = boxes.reshape(b * k, 4).to(images.dtype)
    theta = torch.zeros(b * k, 2, 3, device=images.device, dtype=images.dtype)
    # affine_grid's unit square is the whole image (align_corners=False): scale by the box width
    # over the image width, translate to the box centre.
    theta[:, 0, 0] = (bx[:, 2] - bx[:, 0]) / w
    theta[:, 1, 1] = (bx[:, 3] - bx[:, 1]) / h
    theta[:, 0, 2] = (bx[:, 0] + bx[:, 2]) / w - 1
    theta[:, 1, 2] = (bx[:, 1] + bx[:, 3]) / h - 1
    grid = F.affine_grid(theta, [b * k, c, out_size, out_size], align_corners=False)
    src = images.repeat_interleave(k, 0)
    patches = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return patches.reshape(b, k, c, out_size, out_size)


def color_drop(patches: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """Doersch et al.'s fix for chromatic aberration: keep one random colour channel per patch.

    With probability ``p`` a patch keeps one of its three channels and the other two become
    Gaussian noise around the kept channel's mean (std 1/100 of its std), as in sec. 3.1 of
    Doersch et al. 2015: lens aberration shifts the colour channels apart towards the image
    border, and a network can read a patch's absolute position off that shift instead of
    learning what things look like.

    Args:
        patches: (..., 3, H, W) in [0, 1].

    Returns:
        the same shape, channels dropped in the chosen patches.
    """
    if p <= 0:
        return patches
    flat = patches.reshape(-1, 3, *patches.shape[-2:])
    n, dev = len(flat), flat.device
    drop = torch.rand(n, generator=generator, device=dev) < p
    keep = torch.randint(0, 3, (n,), generator=generator, device=dev)
    kept = flat[torch.arange(n, device=dev), keep][:, None]  # (n, 1, H, W)
    std = kept.flatten(1).std(1).view(-1, 1, 1, 1) / 100
    noise = kept.mean((2, 3), keepdim=True) + std * torch.randn(flat.shape, generator=generator, device=dev,
                                                                dtype=flat.dtype)
    is_kept = F.one_hot(keep, 3).bool().view(n, 3, 1, 1)
    dropped = torch.where(is_kept, flat, noise)
    return torch.where(drop.view(-1, 1, 1, 1), dropped, flat).reshape(patches.shape)


# ---------------------------------------------------------------------------------------------
# features and heads
# ---------------------------------------------------------------------------------------------
def spatial_features(backbone: nn.Module, x: Tensor) -> Tensor:
    """The backbone's last feature map before pooling, (B, C, h, w), C = ``backbone.num_features``.

    Conv nets (our ``convnet*``, timm ResNets) return it from ``forward_features``; a ViT returns
    tokens, whose patch tokens are laid back on their grid (prefix tokens such as CLS dropped).
    """
    feats = backbone.forward_features(x)
    if is_vit(backbone):
        h, w = backbone.patch_embed.dynamic_feat_size(x.shape[-2:])
        tokens = feats[:, backbone.num_prefix_tokens:]  # (B, h*w, C)
        return tokens.transpose(1, 2).reshape(len(x), -1, h, w)
    if feats.dim() != 4:
        raise ValueError(f"{type(backbone).__name__}.forward_features gave shape {tuple(feats.shape)}, "
                         "expected a (B, C, h, w) feature map")
    return feats


@torch.no_grad()
def feature_grid(backbone: nn.Module, image_size: int) -> int:
    """Side h of the backbone's feature map for ``image_size`` inputs (one probe in eval mode)."""
    was_training = backbone.training
    backbone.eval()
    try:
        p = next(backbone.parameters())
        side = spatial_features(backbone, torch.zeros(1, 3, image_size, image_size, device=p.device)).shape[-1]
    finally:
        backbone.train(was_training)
    return side


def encode_decode(backbone: nn.Module, decoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Encoder-decoder pass of the dense tasks (colorization, inpainting).

    Args:
        x: (B, 3, S, S) normalised.

    Returns:
        the decoder's prediction in float32, (B, C_out, s, s), and the pooled backbone
        features (B, D) the collapse monitor watches.
    """
    feats = spatial_features(backbone, x)  # (B, D, h, w)
    return decoder(feats).float(), feats.mean((2, 3))


def encode_patches(backbone: nn.Module, patches: Tensor) -> Tensor:
    """Siamese encoding: every patch through the same backbone, features concatenated in order.

    Args:
        patches: (B, K, 3, s, s) normalised.

    Returns:
        (B, K * num_features): late fusion, as the paired towers of Doersch et al. (fc6 -> concat)
        and the context-free network of Noroozi & Favaro.
    """
    b, k = patches.shape[:2]
    return backbone(patches.flatten(0, 1)).reshape(b, -1)


def classifier(in_dim: int, hidden_dim: int, classes: int) -> nn.Sequential:
    """Linear classifier (``hidden_dim == 0``) or a one-hidden-layer MLP with BN."""
    if hidden_dim < 0 or classes < 2:
        raise ValueError(f"need hidden_dim >= 0 and at least 2 classes, got {hidden_dim}, {classes}")
    return mlp((in_dim, classes) if hidden_dim == 0 else (in_dim, hidden_dim, classes))


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Share of correct arg-max predictions, in [0, 1]; logged live as ``task_acc``."""
    return (logits.argmax(1) == targets).float().mean().item()
