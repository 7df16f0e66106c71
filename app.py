"""SSL Lab: router and frame only; every page lives in views/ (a folder named pages/ would switch Streamlit
to its legacy file-based navigation for the first session of a server)."""

import streamlit as st

from ui.session import join_gate, sidebar, workshop
from ui.state import device_summary, run_store

st.set_page_config(page_title="SSL Lab", page_icon=":material/science:", layout="wide")

pages = {
    "Lab": [
        st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("views/augmentations.py", title="Augmentations", icon=":material/photo_library:"),
        st.Page("views/pretext.py", title="Pretext tasks", icon=":material/extension:"),
        st.Page("views/train.py", title="Train", icon=":material/model_training:"),
        st.Page("views/runs.py", title="Runs", icon=":material/list:"),
        st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
    ],
    "Look inside": [
        st.Page("views/attention.py", title="DINO attention", icon=":material/visibility:"),
        st.Page("views/mae.py", title="MAE reconstructions", icon=":material/grid_view:"),
        st.Page("views/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    ],
    "Learn": [
        st.Page("views/concepts.py", title="Concepts", icon=":material/school:"),
        st.Page("views/collapse.py", title="Collapse lab", icon=":material/compress:"),
        st.Page("views/practice.py", title="Practice", icon=":material/quiz:"),
        st.Page("views/lessons.py", title="Lessons", icon=":material/menu_book:"),
        st.Page("views/transfer.py", title="Transfer planner", icon=":material/moving:"),
    ],
}
if workshop().enabled:
    pages["Workshop"] = [st.Page("views/teacher.py", title="Teacher", icon=":material/supervisor_account:")]
# Until a workshop session has joined, the join form stands in for every page (query params stay,
# so a link a teacher handed out still opens its view after joining).
joined = join_gate()
nav = st.navigation(pages, position="sidebar" if joined else "hidden")
if joined:
    with st.sidebar:
        sidebar()
        st.caption(device_summary())
        st.caption(f"Runs: `{run_store().root}`")
    nav.run()
