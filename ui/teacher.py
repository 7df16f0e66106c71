"""The teacher's panels: unlock, queue controls, participants, class presets, reset between classes."""

from __future__ import annotations

import time

import streamlit as st

from sslcore.methods import METHODS
from sslcore.runs import ACTIVE
from sslcore.runs.scheduler import QueueError, cancel
from sslcore.workshop import KNOB_GROUPS, ClassPresets, WorkshopError, participants, reset_class
from ui.session import actor, workshop
from ui.state import run_store


def unlock() -> bool:
    """True when this session is the teacher's; otherwise the key field (never a URL parameter)."""
    if actor().teacher:
        return True
    if not workshop().teacher_key:
        st.info("No teacher key is set: start the server with SSLCORE_TEACHER_KEY (or `teacher_key` in "
                ".streamlit/secrets.toml) to use this page.")
        return False
    with st.form("teacher_unlock"):
        key = st.text_input("Teacher key", type="password")
        if st.form_submit_button("Unlock"):
            if workshop().check_teacher_key(key):
                st.session_state["teacher"] = True
                st.rerun()
            st.error("That is not the teacher key.")
    return False


def queue_controls() -> None:
    store = run_store()
    paused = bool(store.setting("paused", False))
    if st.toggle("Pause the queue (running runs go on; nothing new starts)", paused, key="teacher_pause") != paused:
        store.set_setting("paused", not paused)
        st.rerun()
    active = store.list(status=ACTIVE)
    if not active:
        return
    c1, c2 = st.columns([3, 1])
    run_id = c1.selectbox("Cancel a run", [r.id for r in active], key="teacher_cancel_pick",
                          format_func=lambda i: f"{i} ({store.get(i).owner_label}, {store.get(i).status})")
    if c2.button("Cancel it", key="teacher_cancel"):
        try:
            cancel(store, run_id, actor())
        except (PermissionError, QueueError) as e:
            st.error(str(e))
        else:
            st.toast(f"Cancelled {run_id}.")


def participant_table() -> None:
    records = run_store().list()
    people = participants(run_store())
    if not people:
        st.caption("Nobody has joined this class yet.")
        return
    st.dataframe([{"name": p.name, "joined": time.strftime("%H:%M", time.localtime(p.joined)),
                   "last seen": time.strftime("%H:%M", time.localtime(p.last_seen)),
                   "runs": sum(r.owner == p.id for r in records),
                   "active": sum(r.owner == p.id and r.status in ACTIVE for r in records)} for p in people],
                 hide_index=True, key="teacher_people")


def presets_form() -> None:
    current = ClassPresets.load(run_store())
    with st.form("teacher_presets"):
        methods = st.multiselect("Methods offered", sorted(METHODS), sorted(current.methods))
        c1, c2, c3 = st.columns(3)
        default = c1.number_input("Default budget (s)", 5, 3600, int(current.default_seconds))
        longest = c2.number_input("Longest budget (s)", 5, 3600, int(current.max_seconds))
        queued = c3.number_input("Runs a participant may have waiting", 1, 20, current.max_queued)
        knobs = st.multiselect("Knobs shown on the Train page", KNOB_GROUPS, list(current.knobs))
        if st.form_submit_button("Save presets"):
            try:
                ClassPresets(tuple(methods), float(default), float(longest), int(queued), tuple(knobs)).save(run_store())
            except WorkshopError as e:
                st.error(str(e))
            else:
                st.toast("Saved: every participant's next page load uses them.")


def reset_panel() -> None:
    st.caption("Between classes: cancel every active run, sign every participant out (they join again), "
               "resume the queue. Reference runs stay.")
    delete_runs = st.checkbox("Also delete the runs participants made", key="teacher_reset_delete")
    with st.popover("Reset the class"):
        if st.button("Yes, reset", type="primary", key="teacher_reset"):
            report = reset_class(run_store(), actor(), delete_runs=delete_runs)
            st.session_state.pop("teacher", None)
            st.session_state.pop("participant_token", None)
            st.toast(f"New class: {len(report.cancelled)} runs cancelled, {len(report.deleted)} deleted.")
            st.rerun()
