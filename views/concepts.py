import numpy as np
import streamlit as st

from sslcore.concepts import (COSINE_PRESETS, OVERLAP_OPS, cosine_similarity, coverage_uniformity, info_nce_terms,
                              nearest_visible_distance, steady_state_lag)
from sslcore.viz.figures import (heatmap_figure, mask_grid_figure, matrix_figure, overlay_figure, points_figure,
                                 series_figure, vectors_figure)
from ui import concepts as uc
from ui.urlstate import data_default, publish, restore

st.title("Concepts")
restore("concepts")
# Keyed and tracked (a tab switch reruns the page), so a link can open a tab.
cos_tab, nce_tab, ema_tab, mask_tab, overlap_tab = st.tabs(
    ["Cosine similarity", "NT-Xent temperature", "Momentum EMA", "MAE masking", "Augmentation overlap"],
    key="concepts_tab", on_change="rerun")
VECTORS = [f"cos_{v}" for v in ("ax", "ay", "px", "py", "nx", "ny")]

with cos_tab:
    preset = st.selectbox("Preset (the worked examples)", list(COSINE_PRESETS), key="cos_preset")
    anchor, pos, neg = COSINE_PRESETS[preset]
    coords = dict(zip(VECTORS, (float(v) for v in (*anchor, *pos, *neg))))
    for k, v in coords.items():
        data_default(k, v)  # another preset resets the six coordinates to its own
    labels = ["anchor x", "anchor y", "positive x", "positive y", "negative x", "negative y"]
    xy = [col.number_input(label, value=coords[k], key=k) for col, label, k in zip(st.columns(6), labels, VECTORS)]
    a, p, n = xy[0:2], xy[2:4], xy[4:6]
    try:
        st.metric("cos(anchor, positive)", f"{cosine_similarity(a, p):.3f}")
        st.metric("cos(anchor, negative)", f"{cosine_similarity(a, n):.3f}")
    except ValueError as e:
        st.error(str(e))
    st.plotly_chart(vectors_figure({"anchor": a, "positive": p, "negative": n}))
    st.info("Cosine similarity only sees the angle: scaling a vector changes nothing. Contrastive losses "
            "pull the positive's angle towards 0 and push negatives apart, on the unit sphere.")

with nce_tab:
    t = st.slider("temperature T", 0.02, 1.0, 0.2, key="nce_t")
    pos_sim = st.slider("similarity of the positive", -1.0, 1.0, 0.8, key="nce_pos")
    negs = np.array([0.7, 0.5, 0.3, 0.1, 0.0, -0.2, -0.5])
    loss, weights = info_nce_terms(pos_sim, negs, t)
    st.metric("InfoNCE loss of this anchor", f"{loss:.3f}")
    st.bar_chart({"negative similarity": [f"{s:+.1f}" for s in negs], "gradient weight": weights},
                 x="negative similarity", y="gradient weight", sort=False)
    ex = uc.nt_xent(pos_sim)
    shown = st.radio("Across batch sizes, at a random init", ["loss", "share of the gradient on the hardest 10%",
                                                               "effective number of negatives"], horizontal=True,
                     key="nce_shown")
    z = {"loss": ex.loss, "effective number of negatives": ex.effective_negatives}.get(shown, ex.hard_share)
    st.plotly_chart(heatmap_figure(z, np.round(ex.temperatures, 3), [str(b) for b in ex.batch_sizes],
                                   f"NT-Xent: {shown} (positive sim {pos_sim:.2f})", "temperature", "batch size"))
    st.info("Low temperature puts almost all the gradient on the hardest negatives (a few effective negatives "
            "out of 2B-2); high temperature spreads it evenly. A bigger batch adds negatives, raises the loss "
            "floor (log(2B-1) when nothing is learned) and draws harder extremes by chance.")

with ema_tab:
    c1, c2, c3 = st.columns(3)
    steps = c1.slider("steps", 500, 10_000, 4000, step=500, key="ema_steps")
    drift = c2.slider("drift per step", 0.0, 0.01, 0.002, format="%.4f", key="ema_drift")
    noise = c3.slider("noise per step", 0.0, 0.2, 0.05, key="ema_noise")
    sim = uc.ema(steps, drift, noise)
    st.plotly_chart(series_figure({"online": sim.online, **{f"target m={m}": v for m, v in sim.targets.items()}},
                                  "online parameter (random walk with drift) and EMA targets"))
    left, right = st.columns(2)
    left.table({"momentum m": list(sim.lag), "window 1/(1-m) steps": [round(1 / (1 - m)) for m in sim.lag],
                "lag (staleness)": [f"{v:.3f}" for v in sim.lag.values()],
                "steady lag d·m/(1-m)": [f"{steady_state_lag(m, drift):.3f}" for m in sim.lag],
                "jitter (instability)": [f"{v:.5f}" for v in sim.jitter.values()]})
    right.plotly_chart(points_figure({f"m={m}": (sim.lag[m], max(sim.jitter[m], 1e-12)) for m in sim.lag},
                                     "the trade-off: staler targets are steadier", "lag", "jitter"))
    st.info("Higher momentum gives a smoother target (lower jitter) that trails further behind (higher lag): "
            "MoCo keeps its key encoder at 0.999 for consistent keys; BYOL raises m towards 1 during training. "
            "With m=0.9999 the target needs ~10,000 steps to catch up at all: longer than many short runs.")

with mask_tab:
    c1, c2 = st.columns([3, 1])
    ratio = c1.slider("mask ratio", 0.25, 0.9, 0.75, step=0.05, key="mask_ratio")
    seed = int(c2.number_input("seed", 0, 10_000, 0, key="mask_seed"))
    masks = uc.example_masks(ratio, seed)
    strategies = ("random", "block", "grid")
    st.plotly_chart(mask_grid_figure(masks, uc.GRID, [f"{s} (dark: hidden)" for s in strategies]))
    st.table({"mask": strategies, "hidden": [f"{m.mean():.0%}" for m in masks],
              "difficulty (distance to visible)": [f"{nearest_visible_distance(m, uc.GRID):.2f}" for m in masks],
              "coverage uniformity": [f"{coverage_uniformity(m, uc.GRID):.2f}" for m in masks]})
    stats = uc.mask_study()
    left, right = st.columns(2)
    left.plotly_chart(overlay_figure(uc.study_curves(stats, "difficulty"), "difficulty (64 masks each)",
                                     "mask ratio", "patches to nearest visible", True))
    right.plotly_chart(overlay_figure(uc.study_curves(stats, "uniformity"), "coverage uniformity (4x4 areas)",
                                      "mask ratio", "0 clumped, 1 even", True))
    st.caption("Curves use the hidden fraction actually drawn: a grid keeps one patch per cell, so its ratio snaps "
               "to the nearest regular pattern (25% gives no mask at all, 90% gives 86%).")
    st.info("Grid masks leave every hidden patch a visible neighbour: easy to fill in by interpolation. Block "
            "masks hide whole regions, so some patches lie far from any context. Random masking at MAE's 75% "
            "sits between: hard enough to need semantics, with context spread over the whole image.")

with overlap_tab:
    c1, c2 = st.columns(2)
    dataset = c1.selectbox("images", ["shapes", "digits"], key="overlap_data")
    prob = c2.slider("probability each op fires", 0.0, 1.0, 1.0, help="crops always happen", key="overlap_p")
    st.plotly_chart(matrix_figure(uc.overlap(dataset, prob), list(OVERLAP_OPS),
                                  "mean pixel correlation: view by row op vs view by column op, same image"))
    st.info("The identity row says how far each op moves a view from the original; the diagonal says how much "
            "two views under the same op still share. A deterministic op (grayscale, or flip when it always "
            "fires) makes two identical views: no variety to learn from. Two random crops share the least, which "
            "is why SimCLR found crop plus colour jitter the composition that matters.")
publish("concepts")
