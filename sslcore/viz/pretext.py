"""What each pretext task shows its network and the label it must predict, as display images.

Every preview calls the task's own ``make_task`` (the function its method trains with) on
copies of one image, so the page shows the very inputs and targets of training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sslcore.augment import denormalize
from sslcore.methods import colorization, inpainting, jigsaw, relpos, rotation
from sslcore.methods.pretext import encode_decode
from sslcore.viz.mae import tile

TASKS = ("rotation", "jigsaw", "relpos", "colorization", "inpainting")

ABOUT: dict[str, str] = {
    "rotation": "**Rotation** (Gidaris et al. 2018): which of 0/90/180/270 degrees was the image turned by? "
                "To know what is upright the network has to find objects and their canonical pose; 4-way, "
                "chance 25%. It fails on what has no upright (round or symmetric objects, top-down textures, "
                "the randomly rotated `shapes`), and cues like a bright sky or light from above solve it "
                "without objects.",
    "jigsaw": "**Jigsaw** (Noroozi & Favaro 2016): 9 tiles, shuffled by one of a fixed set of permutations "
              "chosen far apart in Hamming distance; the network names the permutation. Each tile is encoded "
              "alone by the same backbone, so it must recognise parts to reason about their layout. Gaps and "
              "jitter stop it from matching edges across tiles; chromatic aberration and flat regions remain "
              "shortcuts or dead ends.",
    "relpos": "**Relative position** (Doersch et al. 2015): a centre patch and one of its 8 neighbours; "
              "the network tells where the neighbour sits (1-8, chance 12.5%). Knowing that a wheel sits "
              "below a car door needs parts and layout. Edge continuation (closed by the gap and jitter) "
              "and chromatic aberration (closed by dropping colour channels) are the shortcuts the paper "
              "had to remove.",
    "colorization": "**Colorization** (Zhang et al. 2016): the gray lightness in, the colour (ab of CIE Lab) out, "
                    "as a classification over quantised ab bins with rare colours reweighted. Colour is not in "
                    "the gray image, so the network must recognise grass, sky or skin to guess it; it cannot "
                    "for arbitrary colours (cars, clothes, the random colours of `shapes`), and gray predictions "
                    "already score well under an L2 loss.",
    "inpainting": "**Inpainting** (Pathak et al. 2016, Context Encoders): a square is blanked with the mean "
                  "colour and the network paints it back, scored only on the hole. Filling a hole plausibly "
                  "needs the context's meaning; yet smooth interpolation from the border fills much of it, "
                  "and a fixed central hole lets the network specialise to one place. L2 alone gives "
                  "blurry fills (the paper's adversarial term is left out).",
}


@dataclass
class Panel:
    """A row of display images with captions: images are (3, H, W) in [0, 1]."""

    title: str
    images: list[Tensor]
    captions: list[str]
    columns: int


def enlarge(image: Tensor, side: int = 160) -> Tensor:
    """(3, H, W) -> nearest-neighbour upscaled by the integer factor that brings H closest to ``side``."""
    factor = max(1, round(side / image.shape[-1]))
    return F.interpolate(image[None], scale_factor=factor, mode="nearest")[0]


def draw_boxes(image: Tensor, boxes: Tensor, colors: list[tuple[float, float, float]], width: int = 2) -> Tensor:
    """Outline pixel boxes ``(x0, y0, x1, y1)`` (K, 4) on a copy of ``image`` (3, H, W)."""
    out = image.clone()
    h, w = image.shape[-2:]
    for box, color in zip(boxes.tolist(), colors):
        x0, y0 = (max(0, min(int(math.floor(v)), n - 1)) for v, n in zip(box[:2], (w, h)))
        x1, y1 = (max(0, min(int(math.ceil(v)), n)) for v, n in zip(box[2:], (w, h)))
        c = torch.tensor(color).view(3, 1, 1)
        out[:, y0:y1, x0:min(x0 + width, x1)] = c
        out[:, y0:y1, max(x0, x1 - width):x1] = c
        out[:, y0:min(y0 + width, y1), x0:x1] = c
        out[:, max(y0, y1 - width):y1, x0:x1] = c
    return out


def mosaic(tiles: Tensor, columns: int = 3, pad: int = 1) -> Tensor:
    """(K, 3, t, t) -> one (3, H, W) image of the tiles in rows of ``columns``, white between them."""
    k, c, t, _ = tiles.shape
    rows = math.ceil(k / columns)
    out = torch.ones(c, rows * (t + pad) - pad, columns * (t + pad) - pad)
    for i, piece in enumerate(tiles):
        r, q = divmod(i, columns)
        out[:, r * (t + pad):r * (t + pad) + t, q * (t + pad):q * (t + pad) + t] = piece
    return out


def _batch(image: Tensor, n: int) -> Tensor:
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one (3, H, W) image, got shape {tuple(image.shape)}")
    return image[None].expand(n, -1, -1, -1)


def _scale_boxes(boxes: Tensor, source: Tensor, shown: Tensor) -> Tensor:
    return boxes * (shown.shape[-1] / source.shape[-1])


def rotation_preview(image: Tensor, seed: int = 0) -> list[Panel]:
    cfg = rotation.RotationConfig(image_size=image.shape[-1])
    task = rotation.make_task(_batch(image, 1), torch.Generator().manual_seed(seed), cfg)
    shown = [enlarge(x) for x in denormalize(task.inputs)]
    captions = [f"label {k}: turned {rotation.ANGLES[k]}° ↺" for k in task.targets.tolist()]
    return [Panel("The four inputs of one image, each with the label to predict", shown, captions, 4)]


def jigsaw_preview(image: Tensor, seed: int = 0) -> list[Panel]:
    cfg = jigsaw.JigsawConfig(image_size=image.shape[-1])
    task = jigsaw.make_task(_batch(image, 1), torch.Generator().manual_seed(seed), cfg)
    perms = jigsaw.permutation_set(cfg.permutations, cfg.permutation_seed)
    label = int(task.targets[0])
    perm = perms[label]
    tiles = denormalize(task.inputs[0])  # (9, 3, t, t) in input order
    solved = torch.empty_like(tiles)
    solved[perm] = tiles  # position i holds cell perm[i]: put it back in cell perm[i]
    source = enlarge(task.source[0])
    d = jigsaw.hamming_distances(perms).float()
    d.fill_diagonal_(float("inf"))
    order = ", ".join(str(c + 1) for c in perm.tolist())
    return [Panel(f"Label: permutation #{label} of {len(perms)}, cells ({order}) at positions 1-9; the set's "
                  f"minimum Hamming distance is {int(d.min())}",
                  [draw_boxes(source, _scale_boxes(task.boxes[0], task.source, source), [(1.0, 1.0, 0.0)] * 9),
                   enlarge(mosaic(tiles)), enlarge(mosaic(solved))],
                  ["tiles cut with gaps and jitter", "the input: shuffled tiles", "solved: undo the permutation"], 3)]


def relpos_preview(image: Tensor, seed: int = 0, n: int = 3) -> list[Panel]:
    cfg = relpos.RelPosConfig(image_size=image.shape[-1])
    task = relpos.make_task(_batch(image, n), torch.Generator().manual_seed(seed), cfg)
    patches = denormalize(task.inputs.flatten(0, 1)).reshape(task.inputs.shape)
    shown, captions = [], []
    for i, k in enumerate(task.targets.tolist()):
        source = enlarge(task.source[i])
        boxes = _scale_boxes(task.boxes[i], task.source, source)
        shown += [draw_boxes(source, boxes, [(1.0, 1.0, 0.0), (0.0, 1.0, 1.0)]), enlarge(patches[i, 0]),
                  enlarge(patches[i, 1])]
        captions += ["centre (yellow), neighbour (cyan)", "input 1: centre patch",
                     f"input 2, label {k + 1} {relpos.ARROWS[k]}"]
    return [Panel("Pairs of patches; the label is where patch 2 sits around patch 1 (1-8, row by row)",
                  shown, captions, 3)]


def colorization_preview(image: Tensor, seed: int = 0) -> list[Panel]:
    cfg = colorization.ColorizationConfig(image_size=image.shape[-1])
    task = colorization.make_task(_batch(image, 1), torch.Generator().manual_seed(seed), cfg)
    gray = denormalize(task.inputs)
    lightness = colorization.rgb_to_lab(gray)[:, :1]  # (1, 1, S, S)
    ab = F.interpolate(task.targets, size=lightness.shape[-2:], mode="nearest")  # (1, 2, S, S)
    bins = colorization.ab_bins(cfg.grid)
    nearest = ((ab.permute(0, 2, 3, 1)[..., None, :] - bins) ** 2).sum(-1).argmin(-1)  # (1, S, S)
    ab_binned = bins[nearest].permute(0, 3, 1, 2)
    target = colorization.lab_to_rgb(torch.cat([lightness, ab], 1))
    binned = colorization.lab_to_rgb(torch.cat([lightness, ab_binned], 1))
    chroma = colorization.lab_to_rgb(torch.cat([torch.full_like(lightness, 60), ab], 1))
    shown = [enlarge(x[0]) for x in (task.source, gray, target, binned, chroma)]
    captions = ["image (after the random crop)", "input: lightness only", f"target: ab at {cfg.target_size} px",
                f"target in {len(bins)} ab bins", "ab alone (at L = 60)"]
    return [Panel("The gray input and the colour it must predict", shown, captions, 5)]


def inpainting_preview(image: Tensor, seed: int = 0, n: int = 3) -> list[Panel]:
    cfg = inpainting.InpaintingConfig(image_size=image.shape[-1])
    task = inpainting.make_task(_batch(image, n), torch.Generator().manual_seed(seed), cfg)
    masked, target = denormalize(task.inputs), denormalize(task.targets)
    hole_only = target * task.mask + 0.25 * target * (1 - task.mask)  # context dimmed: only the hole is scored
    shown, captions = [], []
    for i in range(n):
        shown += [enlarge(masked[i]), enlarge(hole_only[i])]
        captions += ["input: hole filled with the mean colour", "target: the hole (loss only there)"]
    return [Panel(f"{cfg.region} holes of {cfg.hole:.0%} of the side", shown, captions, 4)]


PREVIEWS: dict[str, Callable[[Tensor, int], list[Panel]]] = {
    "rotation": rotation_preview, "jigsaw": jigsaw_preview, "relpos": relpos_preview,
    "colorization": colorization_preview, "inpainting": inpainting_preview,
}


def task_preview(task: str, image: Tensor, seed: int = 0) -> list[Panel]:
    """Panels of what ``task``'s network sees for one uint8 image (3, S, S) and what it must predict."""
    if task not in PREVIEWS:
        raise ValueError(f"unknown pretext task {task!r}; choose from {list(PREVIEWS)}")
    return PREVIEWS[task](image, seed)


# ---------------------------------------------------------------------------------------------
# live previews of the dense tasks during training (sslcore.viz.previews)
# ---------------------------------------------------------------------------------------------
def _rows(rows: list[Tensor], min_size: int) -> np.ndarray:
    """Rows of (N, 3, S, S) [0, 1] tensors -> one uint8 grid, one column per image."""
    scale = max(1, math.ceil(min_size / rows[0].shape[-1]))
    return tile([[im.permute(1, 2, 0).cpu().numpy() for im in row] for row in rows], scale=scale)


@torch.no_grad()
def colorization_grid(method: colorization.Colorization, images: Tensor, seed: int = 0,
                      min_size: int = 96) -> np.ndarray:
    """Rows: image, gray input, predicted colours (input lightness + predicted ab), target colours.

    ``images``: (N, 3, S, S) uint8. The model runs in eval mode, which is restored after.
    """
    was_training = method.training
    method.eval()
    try:
        g = torch.Generator(device=images.device).manual_seed(seed)
        task = colorization.make_task(images, g, method.cfg)
        prediction, _ = encode_decode(method.backbone, method.decoder, task.inputs)
        gray = denormalize(task.inputs.float())
        lightness = colorization.rgb_to_lab(gray)[:, :1]
        size = lightness.shape[-2:]
        predicted_ab = F.interpolate(method.decode_ab(prediction), size=size, mode="bilinear", align_corners=False)
        target_ab = F.interpolate(task.targets, size=size, mode="bilinear", align_corners=False)
        rows = [task.source, gray, colorization.lab_to_rgb(torch.cat([lightness, predicted_ab], 1)),
                colorization.lab_to_rgb(torch.cat([lightness, target_ab], 1))]
    finally:
        method.train(was_training)
    return _rows(rows, min_size)


@torch.no_grad()
def inpainting_grid(method: inpainting.Inpainting, images: Tensor, seed: int = 0, min_size: int = 96) -> np.ndarray:
    """Rows: masked input, the whole prediction, the prediction pasted into the hole, the image.

    ``images``: (N, 3, S, S) uint8. The model runs in eval mode, which is restored after.
    """
    was_training = method.training
    method.eval()
    try:
        g = torch.Generator(device=images.device).manual_seed(seed)
        task = inpainting.make_task(images, g, method.cfg)
        prediction, _ = encode_decode(method.backbone, method.decoder, task.inputs)
        predicted = denormalize(prediction)
        rows = [denormalize(task.inputs.float()), predicted,
                task.source * (1 - task.mask) + predicted * task.mask, task.source]
    finally:
        method.train(was_training)
    return _rows(rows, min_size)
