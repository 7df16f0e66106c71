"""The queue on the pages: where a run stands, what its owner may do with it, the whole queue."""

from __future__ import annotations

from typing import Callable, Sequence

import streamlit as st

from sslcore.compare import launch_race
from sslcore.runs import RESUMABLE, RunConfig, RunRecord
from sslcore.runs.dispatcher import ensure_dispatcher
from sslcore.runs.scheduler import QueueError, cancel, delete, describe_wait, may_modify, queue, resume, stop, submit
from sslcore.workshop import WorkshopError
from ui.session import actor, max_queued, presets
from ui.state import run_store, slot_policy


def _within_presets(configs: Sequence[RunConfig]) -> list[RunConfig]:
    found = presets()
    return list(configs) if found is None else [found.apply(c) for c in configs]


def submit_runs(configs: Sequence[RunConfig], group_id: str = "") -> list[str] | None:
    """Queue ``configs`` for this session's participant (within the class presets and their cap); the
    refusal, if any, as a message. Returns the run ids."""
    try:
        run_ids = submit(run_store(), _within_presets(configs), actor(), group_id=group_id, max_queued=max_queued())
    except (QueueError, WorkshopError) as e:
        st.error(str(e))
        return None
    ensure_dispatcher(run_store())
    return run_ids


def submit_run(cfg: RunConfig) -> str | None:
    run_ids = submit_runs([cfg])
    return run_ids[0] if run_ids else None


def start_race(configs: Sequence[RunConfig]) -> str | None:
    """Queue a race for this session's participant; returns its group id, or None with a message."""
    try:
        group_id, _ = launch_race(_within_presets(configs), run_store(), actor(), max_queued())
    except (QueueError, WorkshopError) as e:
        st.error(str(e))
        return None
    return group_id


def queue_table(key: str) -> None:
    """Running and waiting runs with owner, position and expected start (Train and Runs pages)."""
    entries = queue(run_store(), slot_policy())
    paused = run_store().setting("paused", False)
    head = f"Queue: {slot_policy().describe()}"
    if paused:
        st.warning("The teacher paused the queue: running runs go on, waiting ones start when it resumes.")
    if not entries:
        st.caption(f"{head}. Nothing is training or waiting.")
        return
    me = actor().id
    st.caption(f"{head}. Waiting runs start in a fair order: nobody's second run before everyone's first.")
    st.dataframe([{"#": "training" if e.position == 0 else str(e.position), "run": e.record.id,
                   "owner": e.record.owner_label + (" (you)" if e.record.owner == me and me else ""),
                   "method": e.record.method, "starts": "now" if e.position == 0 else describe_wait(e.starts_in),
                   "ends": describe_wait(e.ends_in).replace("now", "soon")} for e in entries],
                 hide_index=True, key=f"{key}_queue")


def where_it_stands(record: RunRecord) -> str | None:
    """'Waiting: position 2, starts in about 3 min' for a queued run; None otherwise."""
    if record.status != "queued":
        return None
    mine = next((e for e in queue(run_store(), slot_policy()) if e.record.id == record.id), None)
    if mine is None:
        return None
    return f"Waiting for a free slot: position {mine.position}, starts {describe_wait(mine.starts_in)}."


def _act(action: Callable[[], None], done: str) -> bool:
    """Run ``action``; a refusal becomes a message on the page. Returns whether it was done."""
    try:
        action()
    except (PermissionError, QueueError, RuntimeError) as e:
        st.error(str(e))
        return False
    st.toast(done)
    return True


def run_actions(record: RunRecord, key: str, allow_delete: bool = False) -> None:
    """Stop / Cancel / Resume (/ Delete) for the run's owner and the teacher; a note for everyone else.

    The buttons only offer what sslcore would allow; sslcore checks the owner again on every call.
    """
    who, store = actor(), run_store()
    if not may_modify(record, who):
        owner = "the lab (a reference run)" if record.reference else record.owner_label
        st.caption(f":material/visibility: Read-only: this run belongs to {owner}.")
        return
    cols = st.columns(4)
    if record.status in ("running", "stopping"):
        if cols[0].button("Stop", key=f"{key}_stop_{record.id}", help="ends after this step, with checkpoint "
                                                                        "and final kNN"):
            _act(lambda: stop(store, record.id, who), "Stop requested: the run saves its checkpoint and ends.")
    if record.status in ("queued", "running", "stopping"):
        if cols[1].button("Cancel", key=f"{key}_cancel_{record.id}", help="ends now; the last checkpoint stays"):
            _act(lambda: cancel(store, record.id, who), "Cancelled.")
    if record.status in RESUMABLE:
        if cols[2].button("Resume", key=f"{key}_resume_{record.id}", help="continues from its last checkpoint "
                                                                           "to its budget"):
            if _act(lambda: resume(store, record.id, who, max_queued()), "Queued again: it continues from its "
                                                                          "last checkpoint."):
                ensure_dispatcher(store)
                st.rerun()  # the whole page, so its live panel polls again
    if allow_delete and record.status not in ("queued", "running", "stopping"):
        with cols[3].popover("Delete"):
            if st.button("Delete this run for good", type="primary", key=f"{key}_delete_{record.id}"):
                if _act(lambda: delete(store, record.id, who), "Deleted."):
                    st.rerun()
