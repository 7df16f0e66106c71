"""Models the visualisation pages can look inside: random init, the user's runs, online hubs."""

from __future__ import annotations

import streamlit as st
import timm
from torch import nn

from sslcore.models import is_vit
from sslcore.runner import load_run
from ui.state import run_store


@st.cache_resource(max_entries=4)
def random_vit(image_size: int = 224) -> nn.Module:
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=image_size,
                             dynamic_img_size=True).eval()


@st.cache_resource(max_entries=4)
def run_backbone(run_id: str) -> nn.Module:
    method, _ = load_run(run_store().run_dir(run_id))
    return method.backbone.eval()


@st.cache_resource(max_entries=2)
def hub_vit(name: str) -> nn.Module:
    """timm weights from the hub; needs a network connection (never used by tests)."""
    return timm.create_model(name, pretrained=True, num_classes=0, dynamic_img_size=True).eval()


def pick_vit(key: str) -> nn.Module | None:
    """Widgets to choose a ViT; explains instead of failing when a choice cannot load."""
    vit_runs = [r.id for r in run_store().list(status=("finished", "stopped")) if r.backbone.startswith("vit")]
    source = st.radio("Model", ["random init", "my runs", "timm hub (online)"], horizontal=True, key=f"{key}_src")
    try:
        if source == "random init":
            return random_vit()
        if source == "my runs":
            if not vit_runs:
                st.info("No finished run with a ViT backbone yet: train DINO or MAE with vit_tiny on the Train page.")
                return None
            return run_backbone(st.selectbox("Run", vit_runs, key=f"{key}_run"))
        name = st.selectbox("timm model", ["vit_small_patch16_224.dino", "vit_small_patch8_224.dino",
                                           "vit_base_patch16_224.dino"], key=f"{key}_hub")
        with st.spinner(f"Downloading {name}..."):
            model = hub_vit(name)
        return model if is_vit(model) else None
    except Exception as e:  # noqa: BLE001 - offline hubs and damaged runs end in a message, not a crash
        st.error(f"Could not load this model: {e}")
        return None
