"""The live run panel (a polling fragment) and run summaries."""

from __future__ import annotations

import streamlit as st

from sslcore.readings import run_notes
from sslcore.runs import ACTIVE, RunRecord
from sslcore.runs.monitors import read_preview
from sslcore.viz.figures import last_value, run_figures
from ui.queue import run_actions, where_it_stands
from ui.state import run_store


def protocol_text(summary: dict) -> str:
    p = summary.get("knn_protocol")
    if not p:
        return "no labels: kNN not measured"
    return f"weighted kNN, k={p['k']}, T={p['t']}, bank {p['bank_size']}, test {p['test_size']}"


def status_line(record: RunRecord, metrics: dict) -> str:
    s = record.summary
    step = metrics["loss"][0][-1] if "loss" in metrics and metrics["loss"][0] else 0
    ips = last_value(metrics, "images_per_second")
    knn = last_value(metrics, "knn_top1")
    parts = [f"**{record.status}**", f"step {step}", f"by {record.owner_label}"]
    if ips:
        parts.append(f"{ips:.0f} images/s")
    if knn is not None:
        base = s.get("knn_top1_random_init")
        parts.append(f"kNN {knn:.1f}%" + (f" (random init {base:.1f}%)" if base is not None else "")
                     + f" [{protocol_text(s)}]")
    scaled = s.get("knn_train_scale", {})
    if "top1" in scaled:
        p = scaled["protocol"]
        parts.append(f"at the training scale {scaled['top1']:.1f}% (random init {scaled['random_init']:.1f}%) "
                     f"[inputs {p['image_size']} -> {p['input_size']} px]")
    return " · ".join(parts)


@st.cache_resource(max_entries=32, show_spinner=False)
def _ended_figures(run_id: str, updated: float, _metrics: dict, _summary: dict) -> dict:
    """An ended run's charts, built once per change of its record and shared by every session: building
    plotly figures is most of a Runs page rerun, and a class opens the same runs. Keyed by the run and its
    record's last update; the underscored arguments (not hashed) are what that record holds."""
    return run_figures(_metrics, _summary)


def draw_run(record: RunRecord, key: str) -> None:
    """Status line and charts of one run, from the store only."""
    metrics = run_store().metrics(record.id)
    st.markdown(status_line(record, metrics))
    if record.error:
        (st.warning if record.status in ("stopped", "diverged", "cancelled", "interrupted") else st.error)(record.error)
    waiting = where_it_stands(record)
    if waiting:
        st.info(waiting)
        return
    if record.status not in ACTIVE:
        for note in run_notes(record.method, record.dataset, record.summary):
            st.info(note, icon=":material/lightbulb:")
    if not metrics.get("loss"):
        st.info("Preparing data and measuring the random-init kNN baseline...")
        return
    ended = record.status not in ACTIVE
    figs = (_ended_figures(record.id, record.updated, metrics, record.summary) if ended
            else run_figures(metrics, record.summary))
    names = list(figs)
    for row in range(0, len(names), 2):
        cols = st.columns(2)
        for col, name in zip(cols, names[row:row + 2]):
            col.plotly_chart(figs[name], key=f"{key}_{name}")
    preview = read_preview(run_store().run_dir(record.id))
    if preview is not None:
        png, text = preview
        st.image(png, caption=f"Fixed {text.get('source', 'held-out')} images at step {text.get('step', '?')}. "
                              f"{text.get('caption', '')}")


# Seconds between refreshes of a live panel. Each one redraws its charts in the browser, and in a
# workshop most panels watch a run waiting in the queue: 10 browsers refreshing every second took a
# quarter of a 2-core server (benchmarks/workshop_load.py).
REFRESH_SECONDS = {"queued": 5.0, "running": 2.0, "stopping": 2.0}


def live_run(run_id: str, key: str = "live", allow_delete: bool = False) -> None:
    """Charts that refresh while the run is active (:data:`REFRESH_SECONDS`), then stop polling; the owner's
    actions."""
    status = run_store().get(run_id).status

    @st.fragment(run_every=REFRESH_SECONDS.get(status))
    def panel() -> None:
        record = run_store().get(run_id)
        run_actions(record, key, allow_delete)
        draw_run(record, key)
        if REFRESH_SECONDS.get(record.status) != REFRESH_SECONDS.get(status):
            st.rerun()  # it started or ended: rerun the page once to poll at its new pace, or stop

    panel()


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "" if x is None else format(x, spec)


def runs_table(records: list[RunRecord], key: str) -> None:
    """Every run with its owner, status, budget spent and kNN beside its random init and protocol."""
    st.dataframe([{"run": r.id, "owner": r.owner_label, "method": r.method, "dataset": r.dataset,
                   "backbone": r.backbone, "status": r.status, "steps": r.summary.get("steps"),
                   "seconds": r.summary.get("seconds"), "kNN top-1 %": _fmt(r.summary.get("knn_top1")),
                   "random init %": _fmt(r.summary.get("knn_top1_random_init")),
                   "protocol": protocol_text(r.summary)} for r in records], hide_index=True, key=f"{key}_table")
