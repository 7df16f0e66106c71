"""Forms that turn widgets into engine configs (one rerun per submit, not per knob)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import streamlit as st

from sslcore.augment import RECIPES, ViewConfig
from sslcore.methods import METHODS
from sslcore.runs import RunConfig
from sslcore.runs.config import (VIT_ONLY_METHODS, backbones_for, default_backbone, default_run,
                                 describe_default_run)
from sslcore.workshop import KNOB_GROUPS, WorkshopError
from ui.session import presets, workshop
from ui.urlstate import data_default, fit


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


def folder_problem(dataset: str, data_dir: str, eval_dir: str = "") -> str | None:
    """Why the folder fields cannot be used, or None: a folder must exist on the server and, in a
    workshop, lie under a data root the teacher allows (a participant must not browse the server)."""
    if dataset != "folder":
        return None
    settings = workshop()
    for folder in (data_dir, eval_dir) if eval_dir else (data_dir,):
        if settings.enabled:
            try:
                settings.check_folder(folder)
            except WorkshopError as e:
                return str(e)
        if not Path(folder).expanduser().is_dir():
            return f"'{folder}' is not a folder on the server."
    return None


def run_config_form(key: str = "train") -> RunConfig | None:
    """The Train page's form; returns a config when submitted and valid, else None.

    In a workshop the class presets choose the methods offered, the default and longest budget, and
    which groups of knobs are shown; hidden knobs keep their defaults.
    """
    class_presets = presets()
    methods = sorted(class_presets.methods if class_presets else METHODS)
    shown = set(class_presets.knobs if class_presets else KNOB_GROUPS)
    fit(f"{key}_method", methods, "the methods this class offers")
    method = st.selectbox("Method", methods, index=methods.index("simclr") if "simclr" in methods else 0,
                          key=f"{key}_method")
    run = default_run(method, "shapes")  # the method's default run on shapes, the one its reference run trained
    if class_presets:
        default_kind, default_budget = "seconds", int(class_presets.default_seconds)
    else:
        default_kind, default_budget = "steps", run.steps
    base = RunConfig(method=method, backbone=default_backbone(method), image_size=run.image_size,
                     batch_size=run.batch_size)
    dataset, data_dir, eval_dir = base.dataset, "", ""
    backbone, image_size, batch_size = base.backbone, base.image_size, base.batch_size
    budget_kind, budget, lr, seed = default_kind, default_budget, base.lr, base.seed
    options: dict[str, Any] = {}
    knn = {"knn_k": base.knn_k, "knn_t": base.knn_t, "knn_bank": base.knn_bank, "knn_test": base.knn_test,
           "knn_every_seconds": base.knn_every_seconds, "knn_stages": base.knn_stages}
    with st.form(f"{key}_form"):
        c1, c2, c3 = st.columns(3)
        if "data" in shown:
            with c1:
                dataset = st.selectbox("Dataset", ["shapes", "digits", "folder"], key=f"{key}_data")
                data_dir = st.text_input("Folder (for 'folder')", "", key=f"{key}_dir",
                                         help="root/<class>/* (labelled: kNN is measured) or a flat folder")
                eval_dir = st.text_input("Labelled eval folder (optional)", "", key=f"{key}_eval")
        if "model" in shown:
            with c2:
                backbones = backbones_for(method)
                vit_only = method in VIT_ONLY_METHODS
                # One widget key per list: a keyed selectbox keeps its value when its options change,
                # which carried 'convnet' over to MAE.
                backbone = st.selectbox("Backbone", backbones, index=backbones.index(default_backbone(method)),
                                        key=f"{key}_bb_vit" if vit_only else f"{key}_bb")
                data_default(f"{key}_size", run.image_size)  # size and batch follow the method
                image_size = st.select_slider("Image size", [16, 24, 32, 48, 64], run.image_size, key=f"{key}_size")
                data_default(f"{key}_bs", run.batch_size)
                batch_size = st.select_slider("Batch size", [16, 32, 64, 128, 256, 512], run.batch_size,
                                              key=f"{key}_bs")
        with c3:
            if "budget" in shown:
                kinds = ["seconds", "steps"]
                data_default(f"{key}_bk", default_kind)
                budget_kind = st.radio("Budget", kinds, kinds.index(default_kind), horizontal=True, key=f"{key}_bk")
                data_default(f"{key}_budget", default_budget)
                budget = st.number_input("Budget", 1, 100_000, default_budget, key=f"{key}_budget")
            if "optimiser" in shown:
                lr = st.number_input("Learning rate (AdamW)", 1e-5, 1.0, 2e-3, format="%.4g", key=f"{key}_lr")
                seed = int(st.number_input("Seed", 0, 2**31 - 1, 0, key=f"{key}_seed"))
            if class_presets:
                st.caption(f"This class trains for at most {class_presets.max_seconds:g} s per run.")
            else:
                st.caption(describe_default_run(method))
        if "method options" in shown:
            with st.expander(f"{method} options (defaults: our CPU values; the paper's are noted in the code)"):
                options = {f.name: _option_widget(f, f"{key}_{method}_{f.name}")
                           for f in dataclasses.fields(METHODS[method].Config) if f.name != "image_size"}
        if "knn monitor" in shown:
            with st.expander("Online kNN monitor (every kNN number of the run carries these)"):
                knn = _knn_widgets(base, key)
        submitted = st.form_submit_button("Start training", type="primary")
    if not submitted:
        return None
    problem = folder_problem(dataset, data_dir, eval_dir)
    if problem:
        st.error(problem)
        return None
    defaults = {f.name: f.default for f in dataclasses.fields(METHODS[method].Config)}
    changed = {k: v for k, v in options.items() if v != defaults[k]}
    try:
        return RunConfig(method=method, dataset=dataset, data_dir=data_dir or None, eval_dir=eval_dir or None,
                         backbone=backbone, image_size=image_size, batch_size=batch_size, lr=lr, seed=seed,
                         steps=int(budget) if budget_kind == "steps" else None,
                         max_seconds=float(budget) if budget_kind == "seconds" else None, options=changed, **knn)
    except ValueError as e:
        st.error(str(e))
        return None


def _knn_widgets(base: RunConfig, key: str) -> dict[str, Any]:
    m1, m2, m3 = st.columns(3)
    return {
        "knn_k": int(m1.number_input("k (neighbours)", 1, 500, base.knn_k, key=f"{key}_knn_k")),
        "knn_t": float(m1.number_input("T (temperature)", 0.001, 10.0, base.knn_t, format="%.3g", key=f"{key}_knn_t")),
        "knn_bank": int(m2.number_input("Bank images", 10, 100_000, base.knn_bank, step=500, key=f"{key}_knn_bank",
                                        help="labelled training images searched for neighbours")),
        "knn_test": int(m2.number_input("Test images", 10, 50_000, base.knn_test, step=100, key=f"{key}_knn_test",
                                        help="held-out images classified by their neighbours")),
        "knn_every_seconds": float(m3.number_input("Check every (s of training)", 1.0, 3600.0, base.knn_every_seconds,
                                                   key=f"{key}_knn_every",
                                                   help="evaluation pauses the training clock")),
        "knn_stages": m3.checkbox("Every stage too", base.knn_stages, key=f"{key}_knn_stages",
                                  help="the same kNN on each stage of the backbone, from the same forward pass: "
                                       "pretext tasks keep what they learn in earlier stages"),
    }


def recipe_choice(key: str) -> ViewConfig:
    name = st.selectbox("Recipe", list(RECIPES), key=f"{key}_recipe")
    return RECIPES[name]
