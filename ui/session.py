"""Who sits at this browser: the machine's own user, or a workshop participant (and whether the teacher).

Outside workshop mode there is one person, who owns every run (today's single-user lab). In workshop
mode the frame asks every new session to join (:func:`join_gate`); the participant's secret token
lives in this session and in a same-site cookie, so a reload finds them again without anything in
the URL. Every permission is checked again in sslcore (``may_modify``), not only by hiding buttons.
"""

from __future__ import annotations

import json
import os

import streamlit as st

from sslcore.runs.scheduler import Actor
from sslcore.workshop import ClassPresets, Participant, WorkshopError, WorkshopSettings, from_token, join
from ui.state import run_store

COOKIE = "ssl_lab_participant"
COOKIE_HOURS = 12


@st.cache_resource
def workshop() -> WorkshopSettings:
    """The server's workshop settings, from its environment and ``.streamlit/secrets.toml``."""
    try:
        secrets = dict(st.secrets)
    except (FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        secrets = {}
    return WorkshopSettings.from_env(os.environ, secrets)


def participant() -> Participant | None:
    """This session's participant: from its token, else from the browser's cookie (a reload)."""
    cookie = None if st.session_state.get("left") else st.context.cookies.get(COOKIE)
    token = st.session_state.get("participant_token") or cookie
    found = from_token(run_store(), token)
    if found is not None:
        st.session_state["participant_token"] = token
    else:
        st.session_state.pop("participant_token", None)
    return found


def actor() -> Actor:
    """Who acts in this session; a workshop session that has not joined acts as nobody."""
    if not workshop().enabled:
        return Actor(teacher=True)  # one person on their own machine owns every run
    found = participant()
    if found is None:
        return Actor(id="-", name="guest")
    return found.actor(teacher=bool(st.session_state.get("teacher")))


def presets() -> ClassPresets | None:
    """The class presets in workshop mode (methods offered, budgets, knobs shown); None otherwise."""
    return ClassPresets.load(run_store()) if workshop().enabled else None


def max_queued() -> int | None:
    found = presets()
    return None if found is None else found.max_queued


def join_gate() -> bool:
    """In workshop mode: True once this session has joined; until then, the join form in its place."""
    if not workshop().enabled:
        return True
    found = participant()
    if found is not None:
        _keep_cookie(st.session_state["participant_token"])
        return True
    if st.session_state.get("left"):  # clear the cookie now that the page renders (after Leave's rerun)
        expired = json.dumps(f"{COOKIE}=; path=/; max-age=0; SameSite=Strict")
        st.html(f"<script>document.cookie = {expired};</script>", unsafe_allow_javascript=True)
    st.title("Join the workshop")
    st.caption("Pick the name others will see beside your runs. Everyone can look at every run; only you and "
               "the teacher can stop or delete yours.")
    with st.form("join"):
        name = st.text_input("Display name", max_chars=40, key="join_name")
        code = st.text_input("Workshop code", type="password", key="join_code") if workshop().code else ""
        if st.form_submit_button("Join", type="primary"):
            try:
                _, token = join(run_store(), workshop(), name, code)
            except WorkshopError as e:
                st.error(str(e))
            else:
                st.session_state["participant_token"] = token
                st.session_state.pop("left", None)
                st.rerun()
    return False


def _keep_cookie(token: str) -> None:
    """Store the token in a same-site cookie (a reload rejoins); written only when the browser lacks it."""
    if st.context.cookies.get(COOKIE) == token:
        return
    value = json.dumps(f"{COOKIE}={token}; path=/; max-age={COOKIE_HOURS * 3600}; SameSite=Strict")
    st.html(f"<script>document.cookie = {value};</script>", unsafe_allow_javascript=True)


def leave() -> None:
    """Forget this session's participant; the join page then clears the browser's cookie."""
    st.session_state.pop("participant_token", None)
    st.session_state.pop("teacher", None)
    st.session_state["left"] = True


def sidebar() -> None:
    """Who is here, in the sidebar of every page (workshop mode)."""
    if not workshop().enabled:
        return
    who = actor()
    st.caption(f"Signed in as **{who.name}**" + (" (teacher)" if who.teacher else ""))
    if st.button("Leave the workshop", key="leave"):
        leave()
        st.rerun()
