"""Plotly figures for the MAE page: a patch grid to hide patches by hand, and the per-patch error.

Pure figure builders and the selection-to-mask step (no Streamlit): the page passes the chart's
selection event back to :func:`hidden_from_selection`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import plotly.graph_objects as go


def patch_centres(grid: tuple[int, int], patch: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) pixel coordinates of every patch centre in raster order, as plotly's ``go.Image`` places pixels.

    ``go.Image`` puts pixel ``i`` at coordinate ``i`` (spanning ``i - 0.5`` to ``i + 0.5``).
    """
    h, w = grid
    rows, cols = np.divmod(np.arange(h * w), w)
    return cols * patch + (patch - 1) / 2, rows * patch + (patch - 1) / 2


def patch_picker_figure(image: np.ndarray, patch: int, width: int = 420) -> go.Figure:
    """The image with one selectable marker per patch (box, lasso, or shift-click to pick patches).

    Args:
        image: (H, W, 3) in [0, 1], H and W multiples of ``patch``.
        patch: patch side in pixels.
        width: figure width in screen pixels (markers are sized to fill their patch).
    """
    height_px, width_px = image.shape[:2]
    grid = (height_px // patch, width_px // patch)
    x, y = patch_centres(grid, patch)
    fig = go.Figure(go.Image(z=np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), hoverinfo="skip"))
    cell = width / grid[1]
    fig.add_scatter(x=x, y=y, mode="markers", customdata=np.arange(len(x)),
                    marker=dict(symbol="square", size=max(4.0, 0.8 * cell), color="rgba(255,255,255,0.15)",
                                line=dict(width=1, color="rgba(255,255,255,0.7)")),
                    selected=dict(marker=dict(color="rgba(128,128,128,0.95)")),
                    unselected=dict(marker=dict(opacity=0.6)),
                    hovertemplate="patch %{customdata}<extra></extra>")
    fig.update_layout(width=width, height=int(width * height_px / width_px) + 40, margin=dict(l=0, r=0, t=30, b=0),
                      dragmode="select", showlegend=False, title="selected patches are hidden")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def hidden_from_selection(selection: Mapping[str, Any] | None, grid: tuple[int, int], patch: int) -> np.ndarray:
    """(h, w) bool mask, True on the patches whose markers are in a plotly selection event.

    ``selection``: Streamlit's ``event.selection`` (a mapping with ``points``, each with ``x``, ``y``).
    Points are mapped back by their coordinates, so whatever trace index plotly reports does not matter.
    """
    h, w = grid
    hidden = np.zeros(grid, dtype=bool)
    for point in (selection or {}).get("points", []):
        if "x" not in point or "y" not in point:
            continue
        col = round((point["x"] - (patch - 1) / 2) / patch)
        row = round((point["y"] - (patch - 1) / 2) / patch)
        if 0 <= row < h and 0 <= col < w:
            hidden[row, col] = True
    return hidden


def error_figure(error: np.ndarray, title: str, width: int = 320) -> go.Figure:
    """Per-patch error (h, w) as a heatmap, hover showing each patch's value; visible patches are 0."""
    h, w = error.shape
    fig = go.Figure(go.Heatmap(z=error, colorscale="Inferno", zmin=0, colorbar=dict(thickness=10),
                               hovertemplate="row %{y}, col %{x}: %{z:.4f}<extra></extra>"))
    fig.update_layout(width=width, height=int(width * h / w) + 40, margin=dict(l=0, r=0, t=30, b=0), title=title)
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    return fig
