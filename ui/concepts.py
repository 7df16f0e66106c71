"""Cached computations of the Concepts page (each one an sslcore.concepts function)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from sslcore import concepts
from sslcore.data import load_split

MASK_RATIOS = tuple(round(r, 2) for r in np.arange(0.25, 0.91, 0.05))
GRID = (8, 8)  # the patch grid of sslcore's ViTs


@st.cache_data
def nt_xent(pos_sim: float) -> concepts.NTXentExplorer:
    return concepts.nt_xent_explorer(np.geomspace(0.02, 1.0, 30), [8, 32, 128, 512], pos_sim)


@st.cache_data
def ema(steps: int, drift: float, noise: float) -> concepts.EMASimulation:
    return concepts.simulate_ema(steps=steps, drift=drift, noise=noise)


@st.cache_data
def mask_study() -> list[concepts.MaskStats]:
    return concepts.mask_study(ratios=MASK_RATIOS, grid=GRID)


@st.cache_data
def example_masks(ratio: float, seed: int) -> np.ndarray:
    """One mask per strategy at ``ratio``: (3, L)."""
    return np.concatenate([concepts.draw_masks(s, ratio, GRID, 1, seed) for s in ("random", "block", "grid")])


@st.cache_data
def overlap(dataset: str, p: float, n: int = 256) -> np.ndarray:
    images = load_split(dataset, "test", 32).images[:n]
    return concepts.augmentation_overlap(images, p=p)


def study_curves(stats: list[concepts.MaskStats], field: str) -> dict[str, tuple[list[float], list[float]]]:
    """``strategy -> (actual ratios, values of field)`` for an overlay plot."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for s in stats:
        xs, ys = out.setdefault(s.strategy, ([], []))
        xs.append(s.actual_ratio)
        ys.append(getattr(s, field))
    return out
