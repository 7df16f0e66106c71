"""The collapse lab's panels: launch a broken/intact pair, watch their signals and verdicts side by side."""

from __future__ import annotations

import streamlit as st

from sslcore.collapse import (ABLATIONS, GROUP_PREFIX, SIGNALS, Ablation, ablation_of, is_broken, lab_configs,
                              new_group, signal_series, verdict)
from sslcore.runs import ACTIVE, RunConfig
from sslcore.viz.figures import overlay_figure
from ui.queue import submit_runs, where_it_stands
from ui.state import run_store


def pick_ablation(key: str = "collapse") -> Ablation:
    ablation = st.selectbox("Take away", ABLATIONS, format_func=lambda a: a.title, key=f"{key}_ablation")
    st.markdown(f"**What it removes:** {ablation.removes}.  \n**What collapse looks like:** {ablation.expect}.  \n"
                f"**Signal:** {SIGNALS[ablation.signal]}; the verdict reads its mean over the last 20 steps "
                f"({ablation.threshold_text()} means collapse).")
    return ablation


def launch_form(ablation: Ablation, key: str = "collapse") -> str | None:
    """Seed and a button; queues the intact and the broken variant as one group and returns its id."""
    with st.form(f"{key}_form"):
        seed = int(st.number_input("Seed (both runs)", 0, 10_000, 0, key=f"{key}_seed"))
        st.caption(f"Both train {ablation.method} on shapes for {ablation.steps} steps with the same seed and views.")
        if not st.form_submit_button("Train the broken and the intact variant", type="primary"):
            return None
    group_id = new_group(ablation)
    intact, broken = lab_configs(ablation, RunConfig(seed=seed))
    return group_id if submit_runs([intact, broken], group_id) else None


def pick_experiment(ablation: Ablation, select: str | None, key: str = "collapse") -> str | None:
    groups = sorted({r.group_id for r in run_store().list() if r.group_id.startswith(GROUP_PREFIX)
                     and ablation_of(r.group_id) == ablation}, reverse=True)
    if not groups:
        return None
    if select in groups:
        st.session_state[f"{key}_group"] = select
    return st.selectbox("Experiment", groups, key=f"{key}_group")


def experiment_panel(group_id: str, key: str = "collapse") -> None:
    """Intact and broken side by side: status, verdict and the signal, refreshed while either trains."""
    ablation = ablation_of(group_id)
    active = any(r.status in ACTIVE for r in run_store().list(group_id=group_id))

    @st.fragment(run_every=2.0 if active else None)
    def panel() -> None:
        runs = sorted(run_store().list(group_id=group_id), key=lambda r: is_broken(r, ablation))
        curves = {}
        for col, record in zip(st.columns(2), runs):
            name = "broken" if is_broken(record, ablation) else "intact"
            metrics = run_store().metrics(record.id)
            curves[name] = signal_series(ablation, metrics)
            with col:
                st.markdown(f"**{name}** · {record.status} · step {curves[name][0][-1] if curves[name][0] else 0}")
                waiting = where_it_stands(record)
                if waiting:
                    st.info(waiting)
                    continue
                v = verdict(ablation, metrics)
                (st.info if v.collapsed is None else st.error if v.collapsed else st.success)(v.text)
        st.plotly_chart(overlay_figure(curves, SIGNALS[ablation.signal], yaxis=SIGNALS[ablation.signal]),
                        key=f"{key}_signal")
        if active and not any(r.status in ACTIVE for r in runs):
            st.rerun()

    panel()
