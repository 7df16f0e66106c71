"""Choosing a model to look inside: the lab's checkpoints, random init, the user's runs, a file, a hub."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import streamlit as st

from sslcore.checkpoint import CheckpointError
from sslcore.models import load
from sslcore.models.load import LoadedModel
from sslcore.runs.saved import from_run
from ui.state import run_store
from ui.timeline import pick_step

SHIPPED, RANDOM, RUNS, FILE = "lab checkpoint", "random init", "my runs", "local file"
HUB = {"vit": "timm hub (online)", "mae": "HF hub (online)"}


@st.cache_resource(max_entries=2)
def default_model(kind: str) -> LoadedModel:
    return load.default_model(kind)


@st.cache_resource(max_entries=2)
def random_model(kind: str) -> LoadedModel:
    return load.random_init(kind)


@st.cache_resource(max_entries=4)
def shipped_model(name: str) -> LoadedModel:
    return load.load_shipped(name)


@st.cache_resource(max_entries=6)  # a run's whole timeline (4 points and its final model) while scrubbing
def run_model(run_id: str, step: int | None = None) -> LoadedModel:
    """Run ``run_id``'s model at ``step`` of its timeline (None: its final checkpoint)."""
    return from_run(run_store().run_dir(run_id), step=step)


@st.cache_resource(max_entries=2)
def file_model(digest: str, filename: str, _data: bytes) -> LoadedModel:
    # Keyed by the file's digest: hashing a 300 MB upload on every rerun would cost seconds. The
    # digest in its name keeps two files of the same name apart in every cache keyed by source.
    loaded = load.load_local_file(_data, filename)
    return replace(loaded, source=f"{loaded.source} (sha256 {digest[:12]})")


@st.cache_resource(max_entries=2)
def hub_model(kind: str, name: str) -> LoadedModel:
    """Downloads on first use; never called by tests."""
    return load.hub_timm(name) if kind == "vit" else load.hub_hf_mae(name)


def _runs(kind: str) -> list[str]:
    done = run_store().list(status=("finished", "stopped"))
    if kind == "mae":
        return [r.id for r in done if r.method == "mae"]
    return [r.id for r in done if r.backbone.startswith("vit")]


def pick_shipped(kind: str | None, key: str) -> LoadedModel | None:
    """A lab checkpoint of ``kind`` (None: any); with none shipped, random init of ``kind`` with a note."""
    names = load.shipped_names(kind)
    if names:
        return shipped_model(st.selectbox("Checkpoint", names, key=f"{key}_ship"))
    if kind is None:
        st.info(f"No lab checkpoint in `{load.assets_dir()}` (assets/README.md has the commands that make them).")
        return None
    return default_model(kind)


def pick_file(what: str, key: str) -> LoadedModel | None:
    up = st.file_uploader(f"A {what} checkpoint (.safetensors, or .pth/.pt: loaded as weights only, never as code)",
                          type=["safetensors", "pth", "pt"], key=f"{key}_file",
                          max_upload_size=load.MAX_CHECKPOINT_BYTES // 2**20)
    if up is None:
        st.info("Files from `sslcore export` rebuild exactly; other ViT weights (timm, DINO, MAE) are matched "
                "by their tensor shapes.")
        return None
    data = up.getvalue()
    return file_model(hashlib.sha256(data).hexdigest(), up.name, data)


def pick_hub(kind: str, key: str) -> LoadedModel | None:
    names = load.TIMM_DINO + load.TIMM_MAE_ENCODERS if kind == "vit" else load.HF_MAE + load.TIMM_MAE_ENCODERS
    name = st.selectbox("Model", names, key=f"{key}_hub")
    if kind == "mae" and name in load.TIMM_MAE_ENCODERS:
        st.warning(load.ENCODER_ONLY_NOTE)
        return None
    with st.spinner(f"Downloading {name}..."):
        return hub_model(kind, name)


def _pick(kind: str, source: str, key: str) -> LoadedModel | None:
    if source == SHIPPED:
        return pick_shipped(kind, key)
    if source == RANDOM:
        return random_model(kind)
    if source == RUNS:
        runs = _runs(kind)
        if not runs:
            hint = "MAE" if kind == "mae" else "DINO (or MAE) with a vit_tiny backbone"
            st.info(f"No finished run for this page yet: train {hint} on the Train page.")
            return None
        run_id = st.selectbox("Run", runs, key=f"{key}_run")
        return run_model(run_id, pick_step(run_id, key))
    if source == FILE:
        return pick_file("DINO ViT" if kind == "vit" else "MAE", key)
    return pick_hub(kind, key)


def pick_model(key: str, kind: str) -> LoadedModel | None:
    """Widgets to choose a model of ``kind`` ("vit" for attention, "mae" for reconstructions).

    Anything that cannot load (offline hub, damaged or foreign file, a pickle that needs code)
    ends in a message on the page, never in an exception.
    """
    source = st.radio("Model", [SHIPPED, RANDOM, RUNS, FILE, HUB[kind]], horizontal=True, key=f"{key}_src")
    try:
        loaded = _pick(kind, source, key)
    except CheckpointError as e:
        st.error(str(e))
        return None
    except ImportError as e:  # the optional `transformers` for HF models
        st.error(str(e))
        return None
    except Exception as e:  # noqa: BLE001 - hub downloads offline, damaged runs: a message, not a crash
        st.error(f"Could not load this model: {type(e).__name__}: {e}")
        return None
    if loaded is None:
        return None
    if kind == "mae" and loaded.kind != "mae":
        st.warning(f"{loaded.source} is a ViT without an MAE decoder: it cannot reconstruct. Use it on the "
                   "DINO attention page, or choose an MAE (a file from `sslcore export` of an MAE run carries one).")
        return None
    show_source(loaded)
    return loaded


def show_source(loaded: LoadedModel) -> None:
    """Where the model came from and its caveats, as captions beside its panels."""
    st.caption(loaded.source)
    for note in loaded.notes:
        st.caption(f":material/info: {note}")
