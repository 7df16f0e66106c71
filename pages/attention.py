import streamlit as st

from sslcore.viz.attention import attention_panels, kept_heads, overlay, resize_longer_side
from ui.images import pick_image
from ui.models import pick_vit

st.title("DINO attention")
st.caption("Where does the CLS token look? Self-attention of the CLS query to every patch, per head, "
           "as in Caron et al. 2021 (attention weights materialised; timm's fused kernel switched off and restored).")
left, right = st.columns([1, 2])
with left:
    model = pick_vit("att_model")
    image = pick_image("att_image")
    size = st.select_slider("Longer side (px)", [64, 128, 224, 320, 448], 224)
with right:
    if model is not None:
        depth = len(model.blocks)
        block = st.slider("Block", 1, depth, depth) - 1
        mass = st.slider("Keep the patches holding this share of each head's attention", 0.1, 1.0, 0.6)
        mode = st.radio("Upsampling", ["nearest", "bilinear"], horizontal=True)
        alpha = st.slider("Overlay opacity", 0.0, 1.0, 0.6)

if model is not None and image is not None:
    p = attention_panels(model, resize_longer_side(image, size), block, mass, mode)
    cols = st.columns(3)
    cols[0].image(p.image, caption="input (cropped to whole patches, aspect kept)", clamp=True)
    cols[1].image(overlay(p, alpha), caption="head-mean attention", clamp=True)
    cols[2].image(p.pca, caption="patch features: first 3 principal components as RGB", clamp=True)
    st.subheader(f"Per head, block {block + 1}: bright = patches holding {mass:.0%} of the head's attention")
    hcols = st.columns(min(6, len(p.heads)))
    for i, (shown, kept) in enumerate(zip(kept_heads(p), p.kept)):
        hcols[i % len(hcols)].image(shown, caption=f"head {i + 1}: {kept.mean():.0%} of the image", clamp=True)
