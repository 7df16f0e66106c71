import streamlit as st

from sslcore.data import image_to_tensor
from sslcore.viz.pretext import ABOUT, TASKS, task_preview
from ui.images import image_grid, pick_image, to_uint8

st.title("Pretext tasks")
st.caption("Before contrastive learning, self-supervision invented labels from the image itself. Each task "
           "below is a registered method: train it on the Train page and its backbone is kNN-evaluated like "
           "any other. The preview runs the task's own `make_task`, the function training calls.")
left, right = st.columns([1, 2])
with left:
    task = st.selectbox("Task", TASKS, key="pre_task")
    image = pick_image("pre")
    size = st.select_slider("Image size (px)", [32, 48, 64], 32, key="pre_size")
    seed = st.number_input("Seed: another random draw", 0, 10_000, 0, key="pre_seed")
with right:
    st.markdown(ABOUT[task])
    if image is not None:
        for panel in task_preview(task, image_to_tensor(image, size), int(seed)):
            st.markdown(f"**{panel.title}**")
            image_grid(to_uint8(panel.images), panel.captions, columns=panel.columns, width=150)
