"""Plotly figure builders for run curves (pure: no Streamlit)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

Metrics = dict[str, tuple[list[int], list[float]]]

# Metrics every run logs; anything else a method logs goes to its own diagnostics chart.
CORE_METRICS = ("loss", "lr", "images_per_second", "collapse_std", "collapse_reference", "knn_top1",
                "knn_top1_random_init", "knn_top1_train_scale")


_LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.3)  # below the step axis's title
Line = tuple[dict, dict]  # a reference line's shape and label (:func:`_hline`)


def _layout(title: str, height: int, yaxis: str, showlegend: bool, lines: Sequence[Line] = (),
            **more: Any) -> dict[str, Any]:
    return dict(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="step",
                yaxis_title=yaxis, showlegend=showlegend, shapes=[s for s, _ in lines],
                annotations=[a for _, a in lines], **more)


def _hline(y: float, text: str, color: str, dash: str, above: bool = False) -> Line:
    """A labelled horizontal line across the plot, as ``Figure.add_hline`` draws it (label at the right,
    below the line unless ``above``). Built as layout entries: ``add_hline`` takes ~6 ms a line, and a live
    panel rebuilds its charts on every refresh of every watching session."""
    shape = dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=y, y1=y, line=dict(dash=dash, color=color))
    label = dict(text=text, xref="x domain", x=1, xanchor="right", yref="y", y=y,
                 yanchor="bottom" if above else "top", showarrow=False)
    return shape, label


def _traces(metrics: Metrics, names: list[str], mode: str = "lines") -> list[go.Scatter]:
    return [go.Scatter(x=metrics[n][0], y=metrics[n][1], mode=mode, name=n) for n in names if n in metrics]


def line_figure(metrics: Metrics, names: list[str], title: str, yaxis: str = "", height: int = 260,
                lines: Sequence[Line] = ()) -> go.Figure:
    """One line per metric of ``names`` that ``metrics`` has, against the step, and reference ``lines``."""
    return go.Figure(_traces(metrics, names),
                     _layout(title, height, yaxis, len(names) > 1, lines, legend=_LEGEND_BELOW))


def knn_figure(metrics: Metrics, protocol: dict[str, Any] | None, random_init: float | None,
               train_scale: dict[str, Any] | None = None) -> go.Figure:
    """Online kNN top-1 with the random-init value of the same network as a dashed line; for patch
    tasks also the kNN at the training scale (start and end of the run, see ``knn_train_scale``)."""
    label = "kNN top-1 (%)"
    if protocol:
        label = f"weighted kNN top-1 (%), k={protocol['k']}, T={protocol['t']}, bank {protocol['bank_size']}, test {protocol['test_size']}"
    traces = _traces(metrics, ["knn_top1"], "lines+markers")
    both = bool(train_scale) and "knn_top1_train_scale" in metrics
    if both:
        p = train_scale["protocol"]
        steps, values = metrics["knn_top1_train_scale"]
        for t in traces:
            t.name = f"inputs {p['image_size']} px"
        traces.append(go.Scatter(x=steps, y=values, mode="lines+markers",
                                 name=f"inputs {p['image_size']} -> {p['input_size']} px (training scale)"))
    lines = [] if random_init is None else [_hline(random_init, f"random init {random_init:.1f}%", "gray", "dash")]
    return go.Figure(traces, _layout(label, 260, "%", both, lines, legend=_LEGEND_BELOW))


def stage_metric_names(metrics: Metrics) -> list[str]:
    """``knn_stage_1`` ... ``knn_stage_n`` logged by the kNN monitor, first stage first."""
    return sorted((k for k in metrics if k.startswith("knn_stage_")), key=lambda k: int(k.rsplit("_", 1)[1]))


def stage_knn_figure(metrics: Metrics, protocols: list[dict[str, Any]], random_init: list[float]) -> go.Figure:
    """Each stage's online kNN minus the same stage at random init: 0 is the random-init network.

    Pretext tasks read well here: their earlier stages climb while the last one specialises to the task.
    """
    traces = []
    for name in stage_metric_names(metrics):
        i = int(name.rsplit("_", 1)[1]) - 1
        steps, values = metrics[name]
        p = protocols[i] if i < len(protocols) else {}
        label = f"stage {i + 1}" + (f" ({p['channels']} ch)" if "channels" in p else "")
        traces.append(go.Scatter(x=steps, y=[v - random_init[i] for v in values], mode="lines+markers", name=label))
    title = "kNN gain over random init, stage by stage (points)"
    if protocols:
        p = protocols[0]
        title += f"<br><sup>weighted kNN k={p['k']}, T={p['t']}, bank {p['bank_size']}, test {p['test_size']}; " \
                 "each stage averaged over space</sup>"
    # The legend sits to the right: below the plot six or more stages would cover the step axis.
    layout = _layout(title, 280, "points", True, [_hline(0, "random init", "gray", "dash")],
                     legend=dict(orientation="v", x=1.02, y=1))
    layout["margin"]["t"] = 60
    return go.Figure(traces, layout)


def collapse_figure(metrics: Metrics) -> go.Figure:
    """Std of L2-normalised embeddings; 1/sqrt(d) for a healthy spread, 0 when collapsed."""
    ref = metrics.get("collapse_reference")
    lines = []
    if ref and ref[1]:
        lines = [_hline(ref[1][-1], f"1/sqrt(d) = {ref[1][-1]:.3f}", "green", "dash", above=True),
                 _hline(0, "collapsed", "red", "dot")]
    return line_figure(metrics, ["collapse_std"], "collapse monitor: std of L2-normalised embeddings", lines=lines)


def run_figures(metrics: Metrics, summary: dict[str, Any]) -> dict[str, go.Figure]:
    """The live view's charts, keyed by a short title."""
    figs = {
        "loss": line_figure(metrics, ["loss"], "training loss (mean over the batch's views)"),
        "knn": knn_figure(metrics, summary.get("knn_protocol"), summary.get("knn_top1_random_init"),
                          summary.get("knn_train_scale")),
        "lr": line_figure(metrics, ["lr"], "learning rate (warm-up + cosine)"),
        "throughput": line_figure(metrics, ["images_per_second"], "throughput (source images / s)", "images/s"),
        "collapse": collapse_figure(metrics),
    }
    stages = summary.get("knn_stages_random_init")
    if stages and stage_metric_names(metrics):
        figs["knn_stages"] = stage_knn_figure(metrics, summary.get("knn_stage_protocols", []), stages)
    extra = sorted(k for k in metrics if k not in CORE_METRICS and not k.startswith("knn_stage_"))
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


def overlay_figure(curves: dict[str, tuple[list[float], list[float]]], title: str, xaxis: str = "step",
                   yaxis: str = "", markers: bool = False, height: int = 300) -> go.Figure:
    """Several runs' (x, y) curves on shared axes, one trace per label (Compare page, races, studies)."""
    fig = go.Figure()
    for label, (xs, ys) in curves.items():
        fig.add_scatter(x=xs, y=ys, mode="lines+markers" if markers else "lines", name=label)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), xaxis_title=xaxis,
                      yaxis_title=yaxis, legend=dict(orientation="h", yanchor="top", y=-0.25))
    return fig


def embedding_grid_figure(coords: dict[str, Any], labels: Any, classes: tuple[str, ...],
                          cols: int = 3) -> go.Figure:
    """Side-by-side 2-D embeddings of the same labelled points, one panel per title in ``coords``.

    Args:
        coords: panel title -> (N, 2) array; every panel shows the same N points.
        labels: (N,) class indices, one colour per class across all panels.
    """
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    titles = list(coords)
    rows = math.ceil(len(titles) / cols)
    fig = make_subplots(rows=rows, cols=min(cols, len(titles)), subplot_titles=titles)
    labels = [int(v) for v in labels]
    palette = qualitative.Plotly + qualitative.D3
    for i, title in enumerate(titles):
        xy = coords[title]
        for c in sorted(set(labels)):
            idx = [j for j, v in enumerate(labels) if v == c]
            name = classes[c] if c < len(classes) else str(c)
            fig.add_scatter(x=[float(xy[j][0]) for j in idx], y=[float(xy[j][1]) for j in idx], mode="markers",
                            marker=dict(size=4, color=palette[c % len(palette)]), name=name, legendgroup=str(c),
                            showlegend=i == 0, row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(height=320 * rows + 40, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return fig


def mask_grid_figure(masks: Any, grid: tuple[int, int], titles: list[str]) -> go.Figure:
    """MAE masks side by side: (K, L) with 0 keep (light), 1 remove (dark)."""
    from plotly.subplots import make_subplots

    h, w = grid
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.03)
    for i, mask in enumerate(masks):
        z = [[float(mask[r * w + c]) for c in range(w)] for r in range(h)]
        fig.add_heatmap(z=z, zmin=0, zmax=1, colorscale=[[0, "#f4f1de"], [1, "#3d405b"]], showscale=False,
                        xgap=1, ygap=1, row=1, col=i + 1)
    fig.update_xaxes(visible=False)
    for i in range(len(titles)):  # square patches in every panel, row 0 at the top
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{i + 1 if i else ''}", row=1, col=i + 1)
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def matrix_figure(z: Any, labels: list[str], title: str, zmin: float = 0.0, zmax: float = 1.0) -> go.Figure:
    """A square matrix with its values written in the cells (e.g. view correlations op x op)."""
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, zmin=zmin, zmax=zmax, colorscale="Viridis",
                               texttemplate="%{z:.2f}"))
    fig.update_layout(title=title, height=420, margin=dict(l=10, r=10, t=40, b=10),
                      yaxis=dict(autorange="reversed"))
    return fig


def points_figure(points: dict[str, tuple[float, float]], title: str, xaxis: str, yaxis: str,
                  log: bool = True) -> go.Figure:
    """Labelled points (e.g. one per momentum on a lag-against-jitter plane)."""
    fig = go.Figure(go.Scatter(x=[p[0] for p in points.values()], y=[p[1] for p in points.values()],
                               mode="markers+text+lines", text=list(points), textposition="top center"))
    axis = "log" if log else "linear"
    fig.update_layout(title=title, height=340, xaxis_title=xaxis, yaxis_title=yaxis, xaxis_type=axis, yaxis_type=axis,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig
