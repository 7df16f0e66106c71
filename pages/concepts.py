import numpy as np
import streamlit as st

from sslcore.concepts import COSINE_PRESETS, cosine_similarity, info_nce_terms, nt_xent_landscape, simulate_ema
from sslcore.viz.figures import heatmap_figure, series_figure, vectors_figure

st.title("Concepts")
cos_tab, nce_tab, ema_tab = st.tabs(["Cosine similarity", "NT-Xent temperature", "Momentum EMA"])

with cos_tab:
    preset = st.selectbox("Preset (the worked examples)", list(COSINE_PRESETS))
    anchor, pos, neg = COSINE_PRESETS[preset]
    c = st.columns(6)
    a = [c[0].number_input("anchor x", value=float(anchor[0])), c[1].number_input("anchor y", value=float(anchor[1]))]
    p = [c[2].number_input("positive x", value=float(pos[0])), c[3].number_input("positive y", value=float(pos[1]))]
    n = [c[4].number_input("negative x", value=float(neg[0])), c[5].number_input("negative y", value=float(neg[1]))]
    try:
        st.metric("cos(anchor, positive)", f"{cosine_similarity(a, p):.3f}")
        st.metric("cos(anchor, negative)", f"{cosine_similarity(a, n):.3f}")
    except ValueError as e:
        st.error(str(e))
    st.plotly_chart(vectors_figure({"anchor": a, "positive": p, "negative": n}))
    st.info("Cosine similarity only sees the angle: scaling a vector changes nothing. Contrastive losses "
            "pull the positive's angle towards 0 and push negatives apart, on the unit sphere.")

with nce_tab:
    t = st.slider("temperature T", 0.02, 1.0, 0.2)
    pos_sim = st.slider("similarity of the positive", -1.0, 1.0, 0.8)
    negs = np.array([0.7, 0.5, 0.3, 0.1, 0.0, -0.2, -0.5])
    loss, weights = info_nce_terms(pos_sim, negs, t)
    st.metric("InfoNCE loss of this anchor", f"{loss:.3f}")
    st.bar_chart({"negative similarity": [f"{s:+.1f}" for s in negs], "gradient weight": weights},
                 x="negative similarity", y="gradient weight")
    temps = np.geomspace(0.02, 1.0, 30)
    batches = [8, 32, 128, 512]
    st.plotly_chart(heatmap_figure(nt_xent_landscape(temps, batches), np.round(temps, 3), [str(b) for b in batches],
                                   "NT-Xent at a random init (positive sim 0.8)", "temperature", "batch size"))
    st.info("Low temperature puts almost all the gradient on the hardest negatives; a bigger batch adds "
            "negatives and raises the loss floor (log(2B-1) when nothing is learned).")

with ema_tab:
    sim = simulate_ema(steps=st.slider("steps", 500, 10_000, 4000, step=500))
    st.plotly_chart(series_figure({"online": sim.online, **{f"target m={m}": v for m, v in sim.targets.items()}},
                                  "online parameter (random walk with drift) and EMA targets"))
    st.table({"momentum m": list(sim.lag), "lag (staleness)": [f"{v:.3f}" for v in sim.lag.values()],
              "jitter (instability)": [f"{v:.5f}" for v in sim.jitter.values()]})
    st.info("Higher momentum gives a smoother target (lower jitter) that trails further behind (higher lag): "
            "MoCo keeps its key encoder at 0.999 for consistent keys; BYOL raises m towards 1 during training.")
