import streamlit as st

from sslcore.augment import BatchViews
from sslcore.data import aspect_crop_box, image_to_tensor
from sslcore.viz.preview import positive_pairs
from ui.forms import recipe_choice, view_config_widgets
from ui.images import image_grid, pick_image, to_uint8
from ui.pipelines import method_pipelines
from ui.urlstate import data_default, publish, restore

st.title("Augmentations")
st.caption("Two random views of one image are a positive pair. What survives every view is what the encoder learns.")
restore("augmentations")
left, right = st.columns([1, 2])
with left:
    image = pick_image("aug")
    if image is not None:
        # A 20000x8 panorama at 200 px wide would be 0 px tall (Streamlit's resize fails): show its centre.
        shown = image.crop(aspect_crop_box(*image.size))
        cropped = shown.size != image.size
        st.image(shown, caption=f"input: its centre {shown.width}x{shown.height} px" if cropped else "input", width=200)
    source = st.radio("Pipeline", ["recipe", "a method's own pipelines"], horizontal=True, key="aug_pipeline")
with right:
    if source == "recipe":
        base = recipe_choice("aug")
        # The sliders start at the recipe's values and follow it when another is picked (keyed sliders would
        # keep theirs, and a link naming only the recipe would open other values than its sender saw).
        for k, v in {"scale": tuple(base.crop_scale), "flip": base.hflip_p, "jp": base.jitter_p, "b": base.brightness,
                     "c": base.contrast, "s": base.saturation, "h": base.hue, "g": base.gray_p, "bl": base.blur_p,
                     "so": base.solarize_p}.items():
            data_default(f"aug_{k}", v)
        with st.form("aug_form"):
            size = st.select_slider("View size", [32, 48, 64, 96, 128], 64, key="aug_size")
            cfg = view_config_widgets(base.__class__(**{**base.__dict__, "size": size}), "aug")
            n = st.slider("Pairs", 1, 12, 6, key="aug_n")
            seed = st.number_input("Seed", 0, 10_000, 0, key="aug_seed")
            st.form_submit_button("Draw views")
        first = second = BatchViews(cfg)
    else:
        method = st.selectbox("Method", ["simclr", "moco", "byol", "dino"], key="aug_method")
        size = st.select_slider("Image size", [32, 48, 64], 32, key="aug_msize")
        # The same keys as the recipe's pairs and seed: one value each, whichever pipeline shows them.
        n, seed = st.slider("Pairs", 1, 12, 6, key="aug_n"), st.number_input("Seed", 0, 10_000, 0, key="aug_seed")
        first, second = method_pipelines(method, size)
publish("augmentations")

if image is not None:
    a, b, corr = positive_pairs(first, second, image_to_tensor(image, 128), n=n, seed=int(seed))
    st.subheader("Positive pairs")
    st.caption("Pearson correlation of the two views' pixels under each pair (compared at the smaller size).")
    image_grid([x for pair in zip(to_uint8(a), to_uint8(b)) for x in pair],
               [c for r in corr.tolist() for c in (f"view 1 (r={r:.2f})", "view 2")], columns=6)
