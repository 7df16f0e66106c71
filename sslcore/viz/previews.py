"""The picture a run's live panel refreshes as it trains: what the method makes of fixed held-out images.

Methods with a decoder have one (MAE's reconstructions, colorization's predicted colours, inpainting's
filled holes), and so has DINO with a ViT (its teacher's attention, so the moment it finds the object
can be watched); the run's preview monitor calls :func:`preview` and :func:`caption`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from torch import Tensor

from sslcore.methods.base import Method
from sslcore.models.backbones import is_vit
from sslcore.viz.attention import attention_grid
from sslcore.viz.mae import preview_grid
from sslcore.viz.pretext import colorization_grid, inpainting_grid


def _teacher_attention(method: Method, images: Tensor) -> np.ndarray:
    return attention_grid(method.teacher_backbone, images)


_GRIDS: dict[str, Callable[..., np.ndarray]] = {"mae": preview_grid, "colorization": colorization_grid,
                                                "inpainting": inpainting_grid, "dino": _teacher_attention}


def has_preview(method: Method) -> bool:
    return method.name in _GRIDS and (method.name != "dino" or is_vit(method.backbone))


def preview(method: Method, images: Tensor) -> np.ndarray | None:
    """An (H, W, 3) uint8 picture of ``method``'s work on ``images`` (N, 3, S, S) uint8; None when it has none."""
    return _GRIDS[method.name](method, images) if has_preview(method) else None


def caption(method: Method) -> str:
    """What the rows of :func:`preview` show."""
    cfg = method.cfg
    if method.name == "mae":
        space = (" Norm-pix model: masked, reconstruction and pasted rows are in per-patch normalised space."
                 if cfg.norm_pix_loss else "")
        return ("Rows: original; masked input (grey patches hidden); reconstruction of every patch; "
                f"reconstruction with the visible patches pasted back.{space}")
    if method.name == "colorization":
        return ("Rows: image; gray input; predicted colours (the input's lightness with the predicted ab, "
                f"{'annealed mean of the bins' if cfg.loss == 'classification' else 'regressed'}); "
                "true colours at the target resolution.")
    if method.name == "inpainting":
        return ("Rows: input with the hole in the mean colour; the decoder's whole output; the output pasted "
                "into the hole; the image.")
    if method.name == "dino":
        return ("Rows: image; the teacher's attention from its class token to each patch (last block, mean over "
                "heads), the green contour around the patches holding 60% of it.")
    return ""
