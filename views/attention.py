import streamlit as st

from sslcore.data import DataError
from sslcore.viz.attention import DISPLAY_SIZES, attention_panels, display_size, overlay, resize_longer_side
from ui.images import pick_image
from ui.models import pick_model
from ui.urlstate import data_default, fit, publish, restore

st.title("DINO attention")
st.caption("Where does the CLS token look? Self-attention of the CLS query to every patch, per head, "
           "as in Caron et al. 2021 (attention weights materialised; timm's fused kernel switched off and restored).")
restore("attention")
left, right = st.columns([1, 2])
with left:
    loaded = pick_model("att_model", "vit")
    image = pick_image("att_image")
    default = display_size(loaded.image_size if loaded is not None else None,
                           drawn=st.session_state.get("att_image_src") in ("shapes", "digits"))
    data_default("att_size", default)
    size = st.select_slider("Longer side (px)", DISPLAY_SIZES, default, key="att_size")
with right:
    if loaded is not None:
        vit = loaded.vit
        depth, n_heads = len(vit.blocks), vit.blocks[-1].attn.num_heads
        views = ["head mean", *[f"head {i + 1}" for i in range(n_heads)]]
        data_default("att_block", depth)
        fit("att_block", range(1, depth + 1), f"this model (blocks 1 to {depth})")
        fit("att_view", views, f"this model ({n_heads} heads)")
        block = st.slider("Block", 1, depth, depth, key="att_block") - 1
        mass = st.slider("Keep the patches holding this share of each head's attention", 0.1, 1.0, 0.6, key="att_mass")
        c1, c2 = st.columns(2)
        view = c1.selectbox("Show", views, key="att_view")
        mode = c2.radio("Upsampling", ["nearest", "bilinear"], horizontal=True, key="att_mode")
        alpha = c1.slider("Overlay opacity", 0.0, 1.0, 0.6, key="att_alpha")
        contour = c2.toggle("Contour of the kept patches", True, key="att_contour")
publish("attention")

if loaded is not None and image is not None:
    try:
        p = attention_panels(vit, resize_longer_side(image, size), block, mass, mode)
    except DataError as e:  # an image or size this ViT cannot take: one sentence, not a traceback
        st.error(str(e))
        st.stop()
    head = None if view == "head mean" else int(view.split()[1]) - 1
    kept = p.kept_mean if head is None else p.kept[head]
    cols = st.columns(3)
    cols[0].image(p.image, clamp=True,
                  caption=f"input {p.image.shape[1]}x{p.image.shape[0]} (centre-cropped to whole patches and to at "
                          "most 4:1, never squashed)")
    cols[1].image(overlay(p, alpha, head, contour), clamp=True,
                  caption=f"{view}, block {block + 1}: green outlines the patches holding {mass:.0%} "
                          f"({kept.mean():.0%} of the image)")
    cols[2].image(p.pca, caption="patch features: first 3 principal components as RGB", clamp=True)
    st.subheader(f"Per head, block {block + 1}")
    hcols = st.columns(min(6, n_heads))
    for i in range(n_heads):
        share = f"{mass:.0%} of its attention on {p.kept[i].mean():.0%} of the image"
        hcols[i % len(hcols)].image(overlay(p, 1.0, i, contour), clamp=True, caption=f"head {i + 1}: {share}")
