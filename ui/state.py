"""Process-wide resources (cached once per server) and device facts."""

from __future__ import annotations

import streamlit as st
import torch

from sslcore.runs import RunStore
from sslcore.runs.dispatcher import ensure_dispatcher
from sslcore.runs.scheduler import SlotPolicy
from sslcore.runs.starter import install_starter_pack


@st.cache_resource
def run_store() -> RunStore:
    """One store per server process; its methods open their own connections, so sharing is safe.

    Its dispatcher starts with the server when runs wait (queued before a restart), so they go on; the
    starter pack's reference runs are installed on first use (and again when the pack changes).
    """
    store = RunStore()
    install_starter_pack(store)
    if store.list(status=("queued",)):
        ensure_dispatcher(store)
    return store


def slot_policy() -> SlotPolicy:
    return SlotPolicy.current(run_store())


@st.cache_resource
def set_threads() -> int:
    # Process-wide torch state: set once for every session, never per script run. The app keeps to
    # the cores the training slots leave (one on a 2-core machine), so a busy page never starves a run.
    torch.set_num_threads(SlotPolicy.for_machine().app_threads)
    return torch.get_num_threads()


def device_summary() -> str:
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU: {SlotPolicy.for_machine().cores} cores, {set_threads()} torch threads in the app (training runs in its own process)"
