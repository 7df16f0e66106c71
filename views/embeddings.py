import streamlit as st

from sslcore.viz.projection import PROJECTIONS
from ui.embeddings import load_points, pick_dataset, pick_readout, pick_source, projection_panel, scores_panel

st.title("Embeddings")
st.caption("What did the backbone learn? Frozen features of labelled images projected to 2-D and coloured by "
           "class: classes that form their own islands are what a linear probe or a kNN can separate. "
           "Hover a point to see its image; click one to see its nearest neighbours.")
c1, c2, c3 = st.columns([2, 2, 1])
with c1:
    source = pick_source("emb")
with c2:
    data = pick_dataset("emb")
with c3:
    n = st.select_slider("Points", [500, 1000, 2000, 5000], 1000, key="emb_n")
    method = st.radio("Projection", PROJECTIONS, horizontal=True, key="emb_proj",
                      help="PCA is instant; UMAP and t-SNE are computed in the background and appear when ready.")
if source is None or data is None:
    st.stop()
stage = pick_readout(source, "emb")
points = load_points(source, data, n, stage)
if points is None:
    st.stop()
plot, scores = st.columns([3, 2])
with plot:
    projection_panel(points, method, "emb")
with scores:
    st.subheader("Scores")
    st.caption(f"{source.label} on {data.name}: weighted kNN and linear probes on frozen features (the standard "
               "output, whichever features the plot shows), with 1%, 10% and 100% of the labels (stratified, seeded).")
    scores_panel(source, data, "emb")
