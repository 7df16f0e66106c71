"""Scrubbing a run's timeline: one "Training step" slider over the points a run kept (see
:mod:`sslcore.runs.timeline`), shared by every page that looks at a run's model."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from sslcore.runs.timeline import path_at, steps
from ui.state import run_store


def _progress(run_dir: Path, step: int) -> str:
    """A point's share of the budget, from its checkpoint's JSON (``summary.progress``), e.g. "10%"."""
    try:
        progress = json.loads(path_at(run_dir, step).with_suffix(".json").read_text())["summary"]["progress"]
    except (OSError, ValueError, KeyError, TypeError):
        return "?"
    return f"{progress:.0%}"


def timeline_points(run_id: str) -> dict[str, int | None]:
    """The run's timeline as slider labels -> steps, e.g. {"0 (random init)": 0, "120 (10%)": 120, ...,
    "1200 (final)": None}; None is its final checkpoint. Empty for a run that kept no timeline (older runs,
    the starter pack's reference runs)."""
    run_dir = run_store().run_dir(run_id)
    kept = steps(run_dir)
    if not kept:
        return {}
    points = {f"{s} (random init)" if s == 0 else f"{s} ({_progress(run_dir, s)})": s for s in kept}
    final = run_store().get(run_id).summary.get("steps")
    points["final" if final is None else f"{final} (final)"] = None
    return points


def pick_step(run_id: str, key: str) -> int | None:
    """A "Training step" slider over run ``run_id``'s timeline (widget key ``f"{key}_step"``); the step to
    load, None for the final checkpoint (the default, and all there is for a run without a timeline).

    One key for every run: a point another run also kept (random init) stays chosen when the run changes;
    any other resets to the final checkpoint, as Streamlit does when a choice leaves the options.
    """
    points = timeline_points(run_id)
    if not points:
        return None
    labels = list(points)
    choice = st.select_slider("Training step", labels, labels[-1], key=f"{key}_step",
                              help="The run kept its weights at random init and at 10%, 25% and 50% of its budget: "
                                   "scrub to see how what it learned changes during training.")
    return points[choice]
