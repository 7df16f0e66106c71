"""``streamlit run`` that writes the server's time for every script run, for ``workshop_load.py``.

Takes ``streamlit``'s own arguments (``python benchmarks/timed_streamlit.py run app.py ...``). With
``SSLCORE_RERUN_LOG`` set, each script run that ends with success appends one JSON line to that file:
``{"session", "fragment", "asked", "done"}``, where ``asked`` is when the server handled the browser's
rerun request and ``done`` when the script run that request started finished (``time.time()``). A
request that a newer one of the same session superseded before its run ended is not counted apart:
the newer one's time is. This is the server's part of an interaction as the server itself sees it,
free of how late a browser on a busy machine stamps its websocket frames. What it does not see is a
request waiting for the server's event loop before it is handled: so every ``LAG_EVERY`` seconds it
also writes ``{"lag", "at"}``, how late a timer callback ran on that loop.

It wraps two methods of Streamlit's ``AppSession`` (1.x): the BackMsg handler and the ScriptRunner
event handler, which a session connects when it creates its script runner, so they are wrapped
before the server starts. The app itself is not changed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time

from streamlit.runtime.app_session import AppSession
from streamlit.runtime.scriptrunner import ScriptRunnerEvent
from streamlit.web import cli

LAG_EVERY = 0.25
# The events that end a script run with success -> whether that run was a fragment's (a live panel's refresh).
_FINISHED = {ScriptRunnerEvent.SCRIPT_STOPPED_WITH_SUCCESS: False,
             ScriptRunnerEvent.FRAGMENT_STOPPED_WITH_SUCCESS: True}


def install(path: str) -> None:
    log = open(path, "a", buffering=1)
    lock = threading.Lock()
    asked: dict[str, float] = {}  # session id -> when its latest rerun request was handled
    lag_started = threading.Event()
    handle_backmsg, on_event = AppSession.handle_backmsg, AppSession._on_scriptrunner_event

    def tick(loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = loop.time()
        with lock:
            log.write(json.dumps({"lag": now - due, "at": time.time()}) + "\n")
        loop.call_at(now + LAG_EVERY, tick, loop, now + LAG_EVERY)

    def timed_backmsg(self: AppSession, msg) -> None:
        if msg.WhichOneof("type") == "rerun_script":
            if not lag_started.is_set():  # the first message: the event loop runs, on this thread
                lag_started.set()
                loop = asyncio.get_running_loop()
                due = loop.time() + LAG_EVERY
                loop.call_at(due, tick, loop, due)
            with lock:
                asked[self.id] = time.time()
        handle_backmsg(self, msg)

    def timed_event(self: AppSession, sender, event: ScriptRunnerEvent, *args, **kwargs) -> None:
        if event in _FINISHED:
            with lock:
                t0 = asked.pop(self.id, None)
                if t0 is not None:
                    log.write(json.dumps({"session": self.id, "fragment": _FINISHED[event], "asked": t0,
                                          "done": time.time()}) + "\n")
        on_event(self, sender, event, *args, **kwargs)

    AppSession.handle_backmsg = timed_backmsg
    AppSession._on_scriptrunner_event = timed_event


if __name__ == "__main__":
    if os.environ.get("SSLCORE_RERUN_LOG"):
        install(os.environ["SSLCORE_RERUN_LOG"])
    sys.argv = ["streamlit", *sys.argv[1:]]
    sys.exit(cli.main())
