"""The picture a run's live panel refreshes as it trains: what the method makes of fixed held-out images.

Methods with a decoder have one (MAE's reconstructions, colorization's predicted colours, inpainting's
filled holes); the run's preview monitor calls :func:`preview` and :func:`caption`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from torch import Tensor

from sslcore.methods.base import Method
from sslcore.viz.mae import preview_grid
from sslcore.viz.pretext import colorization_grid, inpainting_grid

_GRIDS: dict[str, Callable[..., np.ndarray]] = {"mae": preview_grid, "colorization": colorization_grid,
                                                "inpainting": inpainting_grid}


def has_preview(method: Method) -> bool:
    return method.name in _GRIDS


def preview(method: Method, images: Tensor) -> np.ndarray | None:
    """An (H, W, 3) uint8 picture of ``method``'s work on ``images`` (N, 3, S, S) uint8; None when it has none."""
    grid = _GRIDS.get(method.name)
    return None if grid is None else grid(method, images)


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
    return ""
