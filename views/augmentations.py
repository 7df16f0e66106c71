import streamlit as st

from sslcore.augment import BatchViews
from sslcore.data import image_to_tensor
from sslcore.viz.preview import positive_pairs
from ui.forms import recipe_choice, view_config_widgets
from ui.images import image_grid, pick_image, to_uint8
from ui.pipelines import method_pipelines

st.title("Augmentations")
st.caption("Two random views of one image are a positive pair. What survives every view is what the encoder learns.")
left, right = st.columns([1, 2])
with left:
    image = pick_image("aug")
    if image is not None:
        st.image(image, caption="input", width=200)
    source = st.radio("Pipeline", ["recipe", "a method's own pipelines"], horizontal=True)
with right:
    if source == "recipe":
        base = recipe_choice("aug")
        with st.form("aug_form"):
            size = st.select_slider("View size", [32, 48, 64, 96, 128], 64)
            cfg = view_config_widgets(base.__class__(**{**base.__dict__, "size": size}), "aug")
            n = st.slider("Pairs", 1, 12, 6)
            seed = st.number_input("Seed", 0, 10_000, 0)
            st.form_submit_button("Draw views")
        first = second = BatchViews(cfg)
    else:
        method = st.selectbox("Method", ["simclr", "moco", "byol", "dino"])
        size = st.select_slider("Image size", [32, 48, 64], 32)
        n, seed = st.slider("Pairs", 1, 12, 6), st.number_input("Seed", 0, 10_000, 0)
        first, second = method_pipelines(method, size)

if image is not None:
    a, b, corr = positive_pairs(first, second, image_to_tensor(image, 128), n=n, seed=int(seed))
    st.subheader("Positive pairs")
    st.caption("Pearson correlation of the two views' pixels under each pair (compared at the smaller size).")
    image_grid([x for pair in zip(to_uint8(a), to_uint8(b)) for x in pair],
               [c for r in corr.tolist() for c in (f"view 1 (r={r:.2f})", "view 2")], columns=6)
