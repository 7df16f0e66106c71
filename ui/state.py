"""Process-wide resources (cached once per server) and device facts."""

from __future__ import annotations

import os

import streamlit as st
import torch

from sslcore.runs import RunStore


@st.cache_resource
def run_store() -> RunStore:
    """One store per server process; its methods open their own connections, so sharing is safe."""
    return RunStore()


@st.cache_resource
def set_threads() -> int:
    # Process-wide torch state: set once for every session, never per script run.
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    return torch.get_num_threads()


def device_summary() -> str:
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU: {os.cpu_count()} cores, {set_threads()} torch threads in the app (training runs in its own process)"
