import streamlit as st

from sslcore.methods import METHODS
from ui.state import device_summary, run_store

st.title("SSL Lab")
st.markdown(
    "**Self-supervised learning** trains an image encoder without labels: the network solves a task "
    "that the images themselves define (match two random views of one photo, predict hidden patches, "
    "undo a rotation) and, to solve it, learns features that later separate classes it never saw "
    "labelled. This lab lets you watch that happen on your own machine, in minutes.")
c1, c2, c3 = st.columns(3)
with c1:
    st.subheader("See the views")
    st.markdown("Random crops, colour jitter, blur: the invariances a method learns come from its augmentations.")
    st.page_link("views/augmentations.py", label="Augmentations", icon=":material/photo_library:")
with c2:
    st.subheader("Train live")
    st.markdown(f"{len(METHODS)} methods ({', '.join(sorted(METHODS))}) with loss, schedules, throughput, "
                "collapse signals and online kNN accuracy as they move.")
    st.page_link("views/train.py", label="Train", icon=":material/model_training:")
with c3:
    st.subheader("Judge and learn")
    st.markdown("Every run is stored with its protocol; the concept playgrounds explain the maths.")
    st.page_link("views/runs.py", label="Runs", icon=":material/list:")
    st.page_link("views/concepts.py", label="Concepts", icon=":material/school:")

st.divider()
st.subheader("Status")
runs = run_store().list()
st.markdown(f"- Device: {device_summary()}\n"
            f"- Embedded data: `shapes` (10 procedurally drawn shape classes, generated on this machine, no download), "
            f"`digits` (scikit-learn), and any image folder you point the Train page at\n"
            f"- Runs stored: {len(runs)} ({sum(r.status in ('queued', 'running') for r in runs)} active) in `{run_store().root}`")
