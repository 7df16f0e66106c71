"""Forms that turn widgets into engine configs (one rerun per submit, not per knob)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import streamlit as st

from sslcore.augment import RECIPES, ViewConfig
from sslcore.compare import VIT_ONLY_METHODS, backbones_for
from sslcore.methods import METHODS
from sslcore.runner import RunConfig


def view_config_widgets(base: ViewConfig, key: str) -> ViewConfig:
    """Sliders for every op of a view recipe, prefilled from ``base`` (call inside a form)."""
    c1, c2, c3 = st.columns(3)
    with c1:
        st.markdown("**Crop & flip**")
        scale = st.slider("crop scale", 0.05, 1.0, tuple(base.crop_scale), key=f"{key}_scale")
        hflip = st.slider("flip p", 0.0, 1.0, base.hflip_p, key=f"{key}_flip")
    with c2:
        st.markdown("**Colour**")
        jitter_p = st.slider("jitter p", 0.0, 1.0, base.jitter_p, key=f"{key}_jp")
        brightness = st.slider("brightness", 0.0, 1.0, base.brightness, key=f"{key}_b")
        contrast = st.slider("contrast", 0.0, 1.0, base.contrast, key=f"{key}_c")
        saturation = st.slider("saturation", 0.0, 1.0, base.saturation, key=f"{key}_s")
        hue = st.slider("hue", 0.0, 0.5, base.hue, key=f"{key}_h")
    with c3:
        st.markdown("**Other**")
        gray = st.slider("grayscale p", 0.0, 1.0, base.gray_p, key=f"{key}_g")
        blur = st.slider("blur p", 0.0, 1.0, base.blur_p, key=f"{key}_bl")
        solarize = st.slider("solarize p", 0.0, 1.0, base.solarize_p, key=f"{key}_so")
    return dataclasses.replace(base, crop_scale=scale, hflip_p=hflip, jitter_p=jitter_p, brightness=brightness,
                               contrast=contrast, saturation=saturation, hue=hue, gray_p=gray, blur_p=blur,
                               solarize_p=solarize)


def _option_widget(field: dataclasses.Field, key: str) -> Any:
    default = field.default
    label = field.name.replace("_", " ")
    if isinstance(default, bool):
        return st.checkbox(label, default, key=key)
    if isinstance(default, int):
        return int(st.number_input(label, value=default, step=1, key=key))
    if isinstance(default, float):
        return float(st.number_input(label, value=default, format="%.4g", key=key))
    if "choices" in field.metadata:
        choices = list(field.metadata["choices"])
        return st.selectbox(label, choices, index=choices.index(default), key=key)
    if isinstance(default, str):
        return st.text_input(label, default, key=key)
    return default  # tuples and other structured defaults keep the method's value


def run_config_form(key: str = "train") -> RunConfig | None:
    """The Train page's form; returns a config when submitted and valid, else None."""
    method = st.selectbox("Method", sorted(METHODS), index=sorted(METHODS).index("simclr"), key=f"{key}_method")
    with st.form(f"{key}_form"):
        c1, c2, c3 = st.columns(3)
        with c1:
            dataset = st.selectbox("Dataset", ["shapes", "digits", "folder"], key=f"{key}_data")
            data_dir = st.text_input("Folder (for 'folder')", "", key=f"{key}_dir",
                                     help="root/<class>/* (labelled: kNN is measured) or a flat folder")
            eval_dir = st.text_input("Labelled eval folder (optional)", "", key=f"{key}_eval")
        with c2:
            backbones = backbones_for(method)
            vit_only = method in VIT_ONLY_METHODS
            # One widget key per list: a keyed selectbox keeps its value when its options change,
            # which carried 'convnet' over to MAE.
            backbone = st.selectbox("Backbone", backbones, index=backbones.index("vit_tiny" if vit_only else "convnet"),
                                    key=f"{key}_bb_vit" if vit_only else f"{key}_bb")
            image_size = st.select_slider("Image size", [16, 24, 32, 48, 64], 32, key=f"{key}_size")
            batch_size = st.select_slider("Batch size", [16, 32, 64, 128, 256, 512], 128, key=f"{key}_bs")
        with c3:
            budget_kind = st.radio("Budget", ["seconds", "steps"], horizontal=True, key=f"{key}_bk")
            budget = st.number_input("Budget", 1, 100_000, 60, key=f"{key}_budget")
            lr = st.number_input("Learning rate (AdamW)", 1e-5, 1.0, 2e-3, format="%.4g", key=f"{key}_lr")
            seed = int(st.number_input("Seed", 0, 2**31 - 1, 0, key=f"{key}_seed"))
        with st.expander(f"{method} options (defaults: our CPU values; the paper's are noted in the code)"):
            options = {f.name: _option_widget(f, f"{key}_{method}_{f.name}")
                       for f in dataclasses.fields(METHODS[method].Config) if f.name != "image_size"}
        base = RunConfig()
        with st.expander("Online kNN monitor (every kNN number of the run carries these)"):
            m1, m2, m3 = st.columns(3)
            knn_k = int(m1.number_input("k (neighbours)", 1, 500, base.knn_k, key=f"{key}_knn_k"))
            knn_t = float(m1.number_input("T (temperature)", 0.001, 10.0, base.knn_t, format="%.3g", key=f"{key}_knn_t"))
            knn_bank = int(m2.number_input("Bank images", 10, 100_000, base.knn_bank, step=500, key=f"{key}_knn_bank",
                                           help="labelled training images searched for neighbours"))
            knn_test = int(m2.number_input("Test images", 10, 50_000, base.knn_test, step=100, key=f"{key}_knn_test",
                                           help="held-out images classified by their neighbours"))
            knn_every = float(m3.number_input("Check every (s of training)", 1.0, 3600.0, base.knn_every_seconds,
                                              key=f"{key}_knn_every", help="evaluation pauses the training clock"))
            knn_stages = m3.checkbox("Every stage too", base.knn_stages, key=f"{key}_knn_stages",
                                     help="the same kNN on each stage of the backbone, from the same forward pass: "
                                          "pretext tasks keep what they learn in earlier stages")
        submitted = st.form_submit_button("Start training", type="primary")
    if not submitted:
        return None
    if dataset == "folder" and not Path(data_dir).expanduser().is_dir():
        st.error(f"'{data_dir}' is not a folder on the server.")
        return None
    defaults = {f.name: f.default for f in dataclasses.fields(METHODS[method].Config)}
    changed = {k: v for k, v in options.items() if v != defaults[k]}
    try:
        return RunConfig(method=method, dataset=dataset, data_dir=data_dir or None, eval_dir=eval_dir or None,
                         backbone=backbone, image_size=image_size, batch_size=batch_size, lr=lr, seed=seed,
                         steps=int(budget) if budget_kind == "steps" else None,
                         max_seconds=float(budget) if budget_kind == "seconds" else None, knn_k=knn_k, knn_t=knn_t,
                         knn_bank=knn_bank, knn_test=knn_test, knn_every_seconds=knn_every, knn_stages=knn_stages,
                         options=changed)
    except ValueError as e:
        st.error(str(e))
        return None


def recipe_choice(key: str) -> ViewConfig:
    name = st.selectbox("Recipe", list(RECIPES), key=f"{key}_recipe")
    return RECIPES[name]
