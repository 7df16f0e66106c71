"""Embedding scatter plots: a plotly figure coloured by label and a thumbnail sprite for hovering.

Plotly's hover labels cannot show images, so the page pairs the figure with one JPEG sprite of
every point's thumbnail (one image instead of N: a 32 px JPEG spends more bytes on its headers
than on its pixels) and a small script that shows tile ``customdata`` of the hovered point.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.colors import qualitative
from PIL import Image
from torch import Tensor

PALETTE = qualitative.Plotly + qualitative.D3


@dataclass(frozen=True)
class Sprite:
    """Thumbnails tiled row-major: point ``i`` sits at column ``i % columns``, row ``i // columns``."""

    data_uri: str  # data:image/jpeg;base64,...
    columns: int
    tile: int  # px per thumbnail
    count: int


def thumbnail_sprite(images: Tensor, tile: int = 32, quality: int = 85) -> Sprite:
    """One JPEG holding every image of uint8 ``images`` (N, 3, S, S), resized to ``tile`` px."""
    if images.dtype != torch.uint8 or images.dim() != 4 or not len(images):
        raise ValueError(f"need uint8 images (N>0, 3, S, S), got {images.dtype} {tuple(images.shape)}")
    n = len(images)
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    small = images
    if images.shape[-1] != tile:
        small = F.interpolate(images.float(), size=(tile, tile), mode="bilinear", antialias=True,
                              align_corners=False).round().clamp(0, 255).to(torch.uint8)
    sheet = torch.zeros(rows * columns, 3, tile, tile, dtype=torch.uint8)
    sheet[:n] = small
    # (rows*cols, 3, t, t) -> (rows*t, cols*t, 3)
    sheet = sheet.view(rows, columns, 3, tile, tile).permute(0, 3, 1, 4, 2).reshape(rows * tile, columns * tile, 3)
    buf = io.BytesIO()
    Image.fromarray(sheet.numpy()).save(buf, format="JPEG", quality=quality)
    return Sprite("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(), columns, tile, n)


def sprite_tile(sprite: Sprite, index: int) -> Tensor:
    """Decode tile ``index`` of ``sprite`` back to a (3, tile, tile) uint8 tensor."""
    data = base64.b64decode(sprite.data_uri.split(",", 1)[1])
    sheet = torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy())
    r, c, t = index // sprite.columns, index % sprite.columns, sprite.tile
    return sheet[r * t:(r + 1) * t, c * t:(c + 1) * t].permute(2, 0, 1)


def scatter_figure(xy: Tensor, labels: Tensor, classes: Sequence[str], title: str, height: int = 560) -> go.Figure:
    """2-D points (N, 2) coloured by ``labels`` (N,), one trace per class.

    Each point's ``customdata`` is its index in ``xy``, which hover thumbnails and selections use.
    The figure must not depend on the selection: Streamlit clears a chart's selection whenever its
    figure changes, so a highlight drawn from the selection would erase the selection itself.
    """
    fig = go.Figure()
    for c in sorted(set(labels.tolist())):
        idx = (labels == c).nonzero().squeeze(1)
        name = classes[c] if c < len(classes) else str(c)
        fig.add_scatter(x=xy[idx, 0].tolist(), y=xy[idx, 1].tolist(), mode="markers", name=name,
                        customdata=idx.tolist(), marker=dict(size=6, color=PALETTE[c % len(PALETTE)], opacity=0.85),
                        hovertemplate="%{fullData.name} · #%{customdata}<extra></extra>")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"),
                      uirevision="embedding", hovermode="closest", clickmode="event+select")
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    return fig
