"""SSL Lab: router and frame only; every page lives in pages/."""

import streamlit as st

from ui.state import device_summary, run_store

st.set_page_config(page_title="SSL Lab", page_icon=":material/science:", layout="wide")

pages = {
    "Lab": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/augmentations.py", title="Augmentations", icon=":material/photo_library:"),
        st.Page("pages/pretext.py", title="Pretext tasks", icon=":material/extension:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/runs.py", title="Runs", icon=":material/list:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    ],
    "Look inside": [
        st.Page("pages/attention.py", title="DINO attention", icon=":material/visibility:"),
        st.Page("pages/mae.py", title="MAE reconstructions", icon=":material/grid_view:"),
        st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    ],
    "Learn": [
        st.Page("pages/concepts.py", title="Concepts", icon=":material/school:"),
    ],
}
nav = st.navigation(pages)
with st.sidebar:
    st.caption(device_summary())
    st.caption(f"Runs: `{run_store().root}`")
nav.run()
