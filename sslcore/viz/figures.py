"""Plotly figure builders for run curves (pure: no Streamlit)."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

Metrics = dict[str, tuple[list[int], list[float]]]

# Metrics every run logs; anything else a method logs goes to its own diagnostics chart.
CORE_METRICS = ("loss", "lr", "images_per_second", "collapse_std", "collapse_reference", "knn_top1",
                "knn_top1_random_init")


def line_figure(metrics: Metrics, names: list[str], title: str, yaxis: str = "", height: int = 260) -> go.Figure:
    fig = go.Figure()
    for name in names:
        if name in metrics:
            steps, values = metrics[name]
            fig.add_scatter(x=steps, y=values, mode="lines", name=name)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="step",
                      yaxis_title=yaxis, showlegend=len(names) > 1, legend=dict(orientation="h"))
    return fig


def knn_figure(metrics: Metrics, protocol: dict[str, Any] | None, random_init: float | None) -> go.Figure:
    """Online kNN top-1 with the random-init value of the same network as a dashed line."""
    label = "kNN top-1 (%)"
    if protocol:
        label = f"weighted kNN top-1 (%), k={protocol['k']}, T={protocol['t']}, bank {protocol['bank_size']}, test {protocol['test_size']}"
    fig = line_figure(metrics, ["knn_top1"], label, "%")
    fig.update_traces(mode="lines+markers")
    if random_init is not None:
        fig.add_hline(y=random_init, line_dash="dash", line_color="gray",
                      annotation_text=f"random init {random_init:.1f}%", annotation_position="bottom right")
    return fig


def collapse_figure(metrics: Metrics) -> go.Figure:
    """Std of L2-normalised embeddings; 1/sqrt(d) for a healthy spread, 0 when collapsed."""
    fig = line_figure(metrics, ["collapse_std"], "collapse monitor: std of L2-normalised embeddings")
    ref = metrics.get("collapse_reference")
    if ref and ref[1]:
        fig.add_hline(y=ref[1][-1], line_dash="dash", line_color="green",
                      annotation_text=f"1/sqrt(d) = {ref[1][-1]:.3f}", annotation_position="top right")
        fig.add_hline(y=0, line_dash="dot", line_color="red", annotation_text="collapsed",
                      annotation_position="bottom right")
    return fig


def run_figures(metrics: Metrics, summary: dict[str, Any]) -> dict[str, go.Figure]:
    """The live view's charts, keyed by a short title."""
    figs = {
        "loss": line_figure(metrics, ["loss"], "training loss (mean over the batch's views)"),
        "knn": knn_figure(metrics, summary.get("knn_protocol"), summary.get("knn_top1_random_init")),
        "lr": line_figure(metrics, ["lr"], "learning rate (warm-up + cosine)"),
        "throughput": line_figure(metrics, ["images_per_second"], "throughput (source images / s)", "images/s"),
        "collapse": collapse_figure(metrics),
    }
    extra = sorted(k for k in metrics if k not in CORE_METRICS)
    if extra:
        figs["method"] = line_figure(metrics, extra, "method diagnostics")
    return figs


def last_value(metrics: Metrics, name: str) -> float | None:
    if name not in metrics or not metrics[name][1]:
        return None
    value = metrics[name][1][-1]
    return None if isinstance(value, float) and math.isnan(value) else value


def vectors_figure(vectors: dict[str, list[float]]) -> go.Figure:
    """2-D vectors as arrows from the origin."""
    fig = go.Figure()
    lim = max(1.0, max(abs(v) for vec in vectors.values() for v in vec)) * 1.2
    for name, (x, y) in vectors.items():
        fig.add_scatter(x=[0, x], y=[0, y], mode="lines+markers+text", name=name, text=["", name],
                        textposition="top center")
    fig.update_layout(height=360, xaxis=dict(range=[-lim, lim], zeroline=True), margin=dict(l=10, r=10, t=10, b=10),
                      yaxis=dict(range=[-lim, lim], scaleanchor="x", zeroline=True), showlegend=False)
    return fig


def heatmap_figure(z, x, y, title: str, xaxis: str, yaxis: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=z, x=x, y=y, colorscale="Viridis"))
    fig.update_layout(title=title, height=340, xaxis_title=xaxis, yaxis_title=yaxis, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def series_figure(series: dict[str, Any], title: str, xaxis: str = "step") -> go.Figure:
    fig = go.Figure()
    for name, values in series.items():
        fig.add_scatter(y=values, mode="lines", name=name)
    fig.update_layout(title=title, height=340, xaxis_title=xaxis, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h"))
    return fig
