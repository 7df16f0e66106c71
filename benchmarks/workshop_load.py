"""What a workshop of N participants sees on one lab server: latency, errors, lost runs, training steps.

The real app (``streamlit run app.py``) in workshop mode, with a fresh run store, driven by headless
Chromium through Playwright: one browser, one context per participant (each context has its own
cookies, so its own Streamlit session and its own participant token; one browser rather than N keeps
the benchmark's own footprint on a 2-core machine as small as it can be).

1. Solo, ``--solo-runs`` times in turn: one participant joins, submits the benchmark's run (SimCLR
   on shapes, ``--seconds`` of training, seed 0) on the Train page with nobody else connected,
   watches it to the end, then opens Runs, DINO attention (uploads a PNG) and Compare on the idle
   server. The median of their steps (from the run store) is the reference, and their spread the
   noise of one run on this machine; their latencies are the idle server's.
2. Load: N participants arrive ``--stagger`` seconds apart. Each joins with its own name and the
   workshop code, opens Train, submits the same run with its own seed, watches its live panel for
   ``--watch`` seconds (most of them see their place in the queue), opens Runs, opens DINO
   attention, chooses "upload" and uploads a 96x96 PNG, opens Compare, goes back to Train and waits
   there until its run has ended. The load window ends when every run has ended.

An interaction's latency runs from the action (goto, click, upload) until the element that shows
its result is visible, so it includes the browser's own rendering. Its server's part is read from
the page's websocket traffic as the browser's network stack stamped it (CDP): from the rerun
request the action sent to the ``script_finished`` of that script run; and, for every script run of the
load window, inside the server itself (``benchmarks/timed_streamlit.py``: from the moment the server
handled the rerun request to the end of that script run). Interactions that wait for a
job (a run to train) are reported apart and are not held against the latency target. Errors:
elements with data-testid stException or stAlertContentError (no st.error is expected on this
path), Streamlit's connection banner, Playwright timeouts (each placed in the browser or at the
server by the same traffic), and console errors of the pages. A run is lost when its submit left the
page and it did not end 'finished' (or never reached the store).

CPU shares are per process from /proc/<pid>/stat (utime + stime, sampled every 0.5 s; a process
that exits loses at most its last half second), over the load window's wall time and all cores.
Browsers and server share this machine here, where in a workshop each browser runs on its own
laptop. Linux schedules by session first (autogroups: Playwright starts Chromium as a session
leader), so ``nice`` alone would change nothing against the server and the training worker, which
have sessions of their own. ``--browsers nice`` (the default): Chromium runs at nice 19 in a
session whose autogroup is at nice 19; the browsers then take less from the training run, but they
also draw late, refresh their live panels less often than once a second (the output counts the
refreshes they asked for) and may time out; the server's part of each latency is the number to read
then. ``--browsers idle``: Chromium in a CPU cgroup at idle priority (``cpu.idle``, needs root), so
it runs only on CPU time that the server, the dispatcher and the training worker leave: the closest
one machine comes to browsers on the participants' own laptops, for the training run's steps (the
browsers draw later still). ``--browsers normal`` shows the other side: browsers that keep up,
taking their CPU from the training run.

Usage: python benchmarks/workshop_load.py --users 10 [--seconds 20] [--watch 15] [--stagger 1]
       [--port PORT] [--keep] [--browsers nice|idle|normal] [--step-timeout 60]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync",
                 # every participant's tab is the foreground tab of their own laptop: no timer throttling
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows"]
ENDED = ("finished", "stopped", "failed", "diverged", "cancelled", "interrupted")
STATUS_END = re.compile(rf"^({'|'.join(ENDED)}) · step \d+")
WAITING = re.compile(r"Waiting for a free slot: position (\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# App verdicts shown with st.error that are not failures: the Compare page's banner for runs whose
# scores do not compare (it names the property; listed in the output, not counted as errors).
EXPECTED_ERRORS = re.compile(r"^Apples to oranges")
TARGET_P95 = 2.0
RERUN_LOG = "reruns.jsonl"  # in SSLCORE_HOME: each script run's server time (benchmarks/timed_streamlit.py)
KINDS = ("server", "workers", "dispatcher", "browsers", "benchmark")
TARGET_RATIO = 0.8


# --------------------------------------------------------------------------- CPU accounting


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(state, ppid, utime + stime in seconds) of ``pid``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = text.rsplit(")", 1)[1].split()
    return f[0], int(f[1]), (int(f[11]) + int(f[12])) / CLK_TCK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


class CpuSampler:
    """CPU seconds of the server, the dispatcher, the training workers, the browsers and this benchmark
    (with its Playwright driver), sampled from /proc every ``every`` seconds between start and stop."""

    def __init__(self, server_pid: int, root: Path, every: float = 0.5) -> None:
        self.server_pid, self.root, self.every = server_pid, str(root), every
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _classify(self, pid: int, ancestors: set[int]) -> str | None:
        if pid == self.server_pid:
            return "server"
        cmd = _cmdline(pid)
        if self.root in cmd and "sslcore worker" in cmd:
            return "workers"
        if self.root in cmd and "sslcore dispatcher" in cmd:
            return "dispatcher"
        if os.getpid() in ancestors or pid == os.getpid():
            return "browsers" if "chrom" in cmd else "benchmark"
        return None

    def sample(self, baseline: bool = False) -> None:
        table = {}
        for d in os.listdir("/proc"):
            if d.isdigit() and (s := _stat(int(d))) is not None:
                table[int(d)] = s
        for pid, (state, _, cpu) in table.items():
            if pid not in self.kind:
                ancestors, p = set(), pid
                while p in table and p > 1 and len(ancestors) < 64:
                    p = table[p][1]
                    ancestors.add(p)
                kind = self._classify(pid, ancestors)
                if kind is None:
                    continue
                self.kind[pid] = kind
                self.first[pid] = cpu if baseline else 0.0  # born in the window: all of its CPU counts
            if state != "Z":
                self.last[pid] = cpu

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def start(self) -> None:
        self.busy0, self.wall0 = machine_busy(), time.monotonic()
        self.sample(baseline=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        self.wall = time.monotonic() - self.wall0
        busy1 = machine_busy()
        self.machine_share = (busy1[0] - self.busy0[0]) / max(1, busy1[1] - self.busy0[1])

    def seconds(self, kind: str) -> float:
        return sum(self.last.get(p, f) - f for p, f in self.first.items() if self.kind[p] == kind)

    def share(self, kind: str, cores: int) -> float:
        return self.seconds(kind) / self.wall / cores


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int, code: str, log: Path) -> subprocess.Popen:
    """``streamlit run app.py`` in workshop mode on ``port``; in a session of its own, as a server
    started from a terminal is (and so in its own scheduler autogroup)."""
    env = {**os.environ, "SSLCORE_HOME": str(home), "SSLCORE_WORKSHOP": "1", "SSLCORE_WORKSHOP_CODE": code,
           "SSLCORE_TEACHER_KEY": "bench-teacher-key", "SSLCORE_STARTER_PACK": "0",
           "SSLCORE_RERUN_LOG": str(home / RERUN_LOG)}
    out = open(log, "ab")
    timed = str(ROOT / "benchmarks" / "timed_streamlit.py")  # streamlit, writing each script run's server time
    proc = subprocess.Popen([sys.executable, timed, "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"streamlit did not start; its log: {log}")
        time.sleep(0.5)


def stop_server(proc: subprocess.Popen, root: Path) -> None:
    """The server, then the dispatcher it started for this store (a detached process of ours)."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for d in os.listdir("/proc"):
        if d.isdigit() and "sslcore dispatcher" in (cmd := _cmdline(int(d))) and str(root) in cmd:
            try:
                os.kill(int(d), 15)
            except ProcessLookupError:
                pass


IDLE_CGROUP = "workshop_load_browsers"


def idle_cgroup() -> Path:
    """A CPU cgroup at idle priority (``cpu.idle``: its tasks run only on CPU time no other task wants), for
    ``--browsers idle``. Needs root and Linux 5.15 or later (cgroup v1's cpu hierarchy or cgroup v2)."""
    for base in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):
        group = base / IDLE_CGROUP
        try:
            group.mkdir(exist_ok=True)
            (group / "cpu.idle").write_text("1")
            return group
        except OSError:
            continue
    raise SystemExit("--browsers idle needs a CPU cgroup with cpu.idle that this user can create (root, Linux 5.15+)")


def launcher(folder: Path, how: str) -> Path:
    """A shell script that starts Chromium at the CPU priority ``how`` names, for Playwright to launch.

    ``nice``: nice 19 in a session whose autogroup is at nice 19 (Playwright starts the browser as a
    session leader, so Linux's autogroup scheduling gives it a fair share of its own). ``idle``: moved
    into :func:`idle_cgroup` first, with every process it starts.
    """
    setup = {"nice": "echo 19 > /proc/self/autogroup 2>/dev/null\nexec nice -n 19",
             "idle": f"echo $$ > {idle_cgroup()}/cgroup.procs\nexec"}[how]
    path = folder / f"chromium-{how}"
    path.write_text(f"#!/bin/sh\n{setup} {CHROMIUM} \"$@\"\n")
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- one participant


class Wire:
    """A page's websocket traffic as the browser's network stack saw it (CDP Network events, with the
    browser's own timestamps): when the rerun request of an action left, and when the server's
    ``script_finished`` for that full run (not a live panel's fragment run) arrived. Their difference is
    the server's share of an interaction, free of the time the browser then needs to render it."""

    def __init__(self) -> None:
        self.armed, self.sent_at, self.done_at = False, None, None
        self.fragment_reruns = 0  # live-panel refreshes this page asked for (run_every fragments)

    async def attach(self, ctx, page) -> None:
        cdp = await ctx.new_cdp_session(page)
        cdp.on("Network.webSocketFrameSent", self._sent)
        cdp.on("Network.webSocketFrameReceived", self._received)
        await cdp.send("Network.enable")

    def arm(self) -> None:
        self.armed, self.sent_at, self.done_at = True, None, None

    def disarm(self) -> float | None:
        self.armed = False
        return None if self.sent_at is None or self.done_at is None else self.done_at - self.sent_at

    @staticmethod
    def _payload(params) -> bytes | None:
        frame = params["response"]
        return base64.b64decode(frame["payloadData"]) if frame.get("opcode") == 2 else None

    def _sent(self, params) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        if (data := self._payload(params)) is None:
            return
        msg = BackMsg.FromString(data)
        if msg.WhichOneof("type") != "rerun_script":
            return
        if msg.rerun_script.fragment_id:
            self.fragment_reruns += 1
        elif self.armed and self.sent_at is None:
            self.sent_at = params["timestamp"]

    def _received(self, params) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if not self.armed or self.sent_at is None or self.done_at is not None:
            return
        if (data := self._payload(params)) is None:
            return
        msg = ForwardMsg.FromString(data)
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
            self.done_at = params["timestamp"]


@dataclass
class Step:
    user: str
    name: str
    waits: bool  # waits for a job (a run to train)
    seconds: float
    ok: bool
    server: float | None = None  # rerun request sent -> script_finished received, at the browser's network stack


@dataclass
class User:
    name: str
    seed: int
    steps: list[Step] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # expected st.error verdicts (EXPECTED_ERRORS)
    offline: set = field(default_factory=set)  # resources of other hosts this closed network cannot reach
    wire: Wire = field(default_factory=Wire)
    seen: set = field(default_factory=set)
    run_id: str | None = None
    submitted: bool = False
    positions: list[int] = field(default_factory=list)
    at_end: bool = False  # done with its path (or gone after an error): only the hold remains


async def scan(user: User, page, where: str) -> None:
    """Record exceptions, st.error messages and the connection banner now on the page (each text once)."""
    for testid in ("stException", "stAlertContentError", "stConnectionStatus"):
        loc = page.get_by_test_id(testid)
        for k in range(await loc.count()):
            try:
                if not await loc.nth(k).is_visible():
                    continue
                text = " ".join((await loc.nth(k).inner_text(timeout=2000)).split())[:400]
            except Exception:  # noqa: BLE001 - the element went away while we read it
                continue
            if (testid, text) not in user.seen:
                user.seen.add((testid, text))
                expected = testid == "stAlertContentError" and EXPECTED_ERRORS.search(text)
                (user.notes if expected else user.errors).append(f"{where}: {testid}: {text}")


async def act(user: User, page, name: str, action, ready, timeout: float, waits: bool = False) -> bool:
    """Time ``action`` (a coroutine function taking a timeout in ms, or None) until ``ready`` (the same)
    returns; a Playwright timeout counts as an error and its latency as the whole timeout."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    user.wire.arm()
    t0 = time.perf_counter()
    ok = True
    try:
        if action is not None:
            await action(timeout * 1000)
        await ready(max(1.0, timeout - (time.perf_counter() - t0)) * 1000)
    except PlaywrightTimeout:
        ok = False
        w = user.wire
        if w.sent_at is None:
            where = "in the browser: its request never left the page"
        elif w.done_at is None:
            where = "at the server: the request left the page, the script run did not finish"
        else:
            where = f"in the browser: the server finished in {w.done_at - w.sent_at:.1f} s, the page did not draw it"
        user.errors.append(f"{name}: Playwright timeout after {timeout:.0f} s ({where})")
    seconds = time.perf_counter() - t0
    if action is not None and user.wire.done_at is None:
        await asyncio.sleep(0.5)  # the CDP event of a frame the page has already drawn may still be on its way
    user.steps.append(Step(user.name, name, waits, seconds, ok, user.wire.disarm() if action is not None else None))
    await scan(user, page, name)
    return ok


def console_error(user: User, base: str, message) -> None:
    """A console error of the page; a resource of another host that this closed network cannot resolve
    (no DNS here; a workshop with internet loads it) is noted apart, not counted."""
    if message.type != "error":
        return
    url = (message.location or {}).get("url", "")
    if "ERR_NAME_NOT_RESOLVED" in message.text or "ERR_INTERNET_DISCONNECTED" in message.text:
        if url and not url.startswith(base):
            user.offline.add(url.split("?")[0])
            return
    user.console.append(f"{message.text[:300]} ({url})" if url else message.text[:300])


def visible(locator):
    return lambda ms: locator.wait_for(state="visible", timeout=ms)


def pictures(page, locator):
    """``locator`` visible and every image of the page's main area loaded: the pictures are the result a
    participant waits for, and a click before they arrive would have the browser ask for images that the
    newer script run has already dropped from the server (a 404 in the console)."""
    async def ready(ms: float) -> None:
        t0 = time.perf_counter()
        await locator.wait_for(state="visible", timeout=ms)
        left = max(1000.0, ms - (time.perf_counter() - t0) * 1000)
        await page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')]"
            ".every(i => i.complete && i.naturalWidth > 0)", timeout=left)
    return ready


async def participant(browser, base: str, user: User, args, code: str, png: Path, solo: bool,
                      start_after: float = 0.0, hold=None) -> None:
    """One participant's session, start to end (see the module docstring)."""
    await asyncio.sleep(start_after)
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await ctx.new_page()
    page.set_default_timeout(args.step_timeout * 1000)  # fills and reads too: a starved browser is slow everywhere
    await user.wire.attach(ctx, page)
    page.on("console", lambda m: console_error(user, base, m))
    page.on("pageerror", lambda e: user.console.append(f"pageerror: {str(e)[:300]}"))
    t = args.step_timeout
    sidebar = page.get_by_test_id("stSidebar")

    def nav(title: str):
        """Open a page from the sidebar menu, as a participant does (its "View more" first if needed)."""
        link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=title)

        async def go(ms: float) -> None:
            more = page.get_by_test_id("stSidebarNavViewButton")
            if not await link.is_visible() and await more.is_visible():
                await more.click(timeout=ms)
            await link.click(timeout=ms)

        return go

    try:
        await act(user, page, "open the app (join form)", lambda ms: page.goto(base, timeout=ms),
                  visible(page.get_by_role("button", name="Join")), t)
        await page.get_by_label("Display name").fill(user.name)
        await page.get_by_label("Workshop code").fill(code)
        await act(user, page, "join", lambda ms: page.get_by_role("button", name="Join").click(timeout=ms),
                  visible(sidebar.get_by_text(f"Signed in as {user.name}")), t)
        await act(user, page, "open Train", nav("Train"),
                  visible(page.get_by_role("button", name="Start training")), t)
        budget = page.get_by_role("spinbutton", name="Budget", exact=True)
        await budget.fill(str(args.seconds))
        await budget.press("Tab")
        seed = page.get_by_role("spinbutton", name="Seed", exact=True)
        await seed.fill(str(user.seed))
        await seed.press("Tab")
        own_status = page.get_by_text(re.compile(rf"· step \d+ · by {re.escape(user.name)}")).first
        shown = await act(user, page, "submit a run (live panel shows)",
                          lambda ms: page.get_by_role("button", name="Start training").click(timeout=ms),
                          visible(own_status), t)
        user.submitted = user.wire.sent_at is not None  # the submit's request left the page
        if shown:
            m = re.search(r"[?&]run=([^&]+)", page.url)
            user.run_id = m.group(1) if m else None
        if solo:
            await act(user, page, "watch own run until it ended", None,
                      visible(page.get_by_text(STATUS_END).first), args.seconds * 4 + 300, waits=True)
        else:
            end = time.monotonic() + args.watch
            while time.monotonic() < end:
                waiting = page.get_by_text(WAITING)
                if await waiting.count():
                    try:
                        m = WAITING.search(await waiting.first.inner_text(timeout=1000))
                        if m and (not user.positions or user.positions[-1] != int(m.group(1))):
                            user.positions.append(int(m.group(1)))
                    except Exception:  # noqa: BLE001 - redrawn while read
                        pass
                await scan(user, page, "watching the live panel")
                await asyncio.sleep(1.0)
        await act(user, page, "open Runs", nav("Runs"), visible(page.get_by_text("Config and summary")), t)
        heads = page.get_by_text(re.compile(r"^head 3: "))
        await act(user, page, "open DINO attention (shapes image)", nav("DINO attention"), pictures(page, heads), t)

        async def uploader_shown(ms):
            await page.get_by_text(re.compile(r"^Choose an image file")).wait_for(state="visible", timeout=ms)
            await heads.wait_for(state="detached", timeout=ms)

        await act(user, page, "choose upload", lambda ms: page.get_by_text("upload", exact=True).click(timeout=ms),
                  uploader_shown, t)
        await act(user, page, "upload a PNG (attention panels)",
                  lambda ms: page.locator("input[type=file]").last.set_input_files(str(png), timeout=ms),
                  pictures(page, heads), t)
        await act(user, page, "open Compare", nav("Compare"),
                  visible(page.get_by_text(re.compile(r"No checkpoint yet|PCA of L2-normalised backbone"))), t)
        if not solo:
            await act(user, page, "back to Train (own run's panel)", nav("Train"), visible(own_status), t)
            await act(user, page, "wait on Train until own run ended", None,
                      visible(page.get_by_text(STATUS_END).first), args.users * (args.seconds + 90) + 300, waits=True)
            user.at_end = True
            if hold is not None:
                await hold.wait()  # stay connected until every run has ended
    except Exception as e:  # noqa: BLE001 - anything else the page did is an error of this session
        user.errors.append(f"unexpected {type(e).__name__}: {str(e).splitlines()[0][:300]}")
    finally:
        user.at_end = True
        await ctx.close()


# --------------------------------------------------------------------------- the run store


def all_runs(store) -> list:
    """Every run in the store, oldest first, read only (``RunStore.list`` would also reap dead runs: that
    is the app's and the dispatcher's job, not the observer's)."""
    with store.connection() as db:
        ids = [row[0] for row in db.execute("SELECT id FROM runs ORDER BY created")]
    return [store.get(i) for i in ids]


def owner_runs(store, names: set[str]) -> dict[str, list]:
    found: dict[str, list] = {}
    for r in all_runs(store):
        if r.owner_name in names:
            found.setdefault(r.owner_name, []).append(r)
    return found


async def until_runs_ended(store, users: list[User], deadline: float) -> None:
    """Poll the store until every participant has submitted (or given up) and every run has ended."""
    names = {u.name for u in users}
    while time.monotonic() < deadline:
        runs = await asyncio.to_thread(owner_runs, store, names)
        if (all(u.at_end or (u.submitted and u.name in runs) for u in users)
                and all(r.status in ENDED for rs in runs.values() for r in rs)):
            return
        await asyncio.sleep(2.0)


# --------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def log_problems(path: Path) -> list[str]:
    """Each distinct traceback of a log (the log line before it, its exception line) with its count, and
    lines that report an error without one."""
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    found: Counter = Counter()
    i = 0
    while i < len(lines):
        if lines[i].startswith("Traceback"):
            before = re.sub(r"^\d{4}-\d\d-\d\d [\d:.]+ ", "", lines[i - 1].strip()) if i else ""
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
                j += 1
            found[f"traceback after '{before[:160]}': {lines[j].strip()[:200] if j < len(lines) else '?'}"] += 1
            i = j + 1
            continue
        if re.search(r"\b(ERROR|CRITICAL)\b", lines[i]) or re.match(r"^\w*(Error|Exception):", lines[i]):
            found[lines[i].strip()[:250]] += 1
        i += 1
    return [f"{n} x {text}" for text, n in found.items()]


def _s(x: float) -> str:
    return "" if x != x else f"{x:.2f}"  # NaN: nothing measured


def server_runs(log: Path, window: tuple[float, float]) -> dict[str, list[float]]:
    """Seconds from rerun request to script run finished, measured inside the server, of the script runs
    asked for in the load window: ``full`` (an action or a page) and ``fragment`` (a live panel's refresh);
    ``lag``: how late the server's event loop ran a timer (a request waits that long before it is handled)."""
    runs: dict[str, list[float]] = {"full": [], "fragment": [], "lag": []}
    lines = log.read_text().splitlines() if log.exists() else []
    for row in map(json.loads, lines):
        if "lag" in row:
            if window[0] <= row["at"] <= window[1]:
                runs["lag"].append(row["lag"])
        elif window[0] <= row["asked"] <= window[1]:
            runs["fragment" if row["fragment"] else "full"].append(row["done"] - row["asked"])
    return runs


def report(args, solos: list[User], users: list[User], store, sampler: CpuSampler, wall_total: float,
           home: Path, cores: int, server: dict[str, list[float]]) -> None:
    solo_runs = [store.get(s.run_id) for s in solos if s.run_id]
    alone = [r.summary["steps"] for r in solo_runs if r.summary.get("steps")]
    solo_steps = float(np.median(alone)) if alone else None
    runs = owner_runs(store, {u.name for u in users})
    steps = [s for u in users for s in u.steps]
    quick = [s.seconds for s in steps if not s.waits]
    quick_server = [s.server for s in steps if not s.waits and s.server is not None]
    waiting = [s.seconds for s in steps if s.waits]
    errors = [e for u in users for e in u.errors]
    console = [c for u in users for c in u.console]
    count = {k: sum(k in e for e in errors) for k in ("stException", "stAlertContentError", "stConnectionStatus")}
    timeouts = [e for e in errors if "Playwright timeout" in e]
    server_timeouts = sum("(at the server" in e for e in timeouts)
    other = len(errors) - sum(count.values()) - len(timeouts)
    refreshes = sum(u.wire.fragment_reruns for u in users) / sampler.wall
    submitted = [u for u in users if u.submitted]
    lost = [u.name for u in submitted if not any(r.status == "finished" for r in runs.get(u.name, []))]
    ratios = [r.summary.get("steps", 0) / solo_steps for rs in runs.values() for r in rs if solo_steps]
    p95 = pct(quick, 95)

    def verdict(flag: bool) -> str:
        return "met" if flag else "**missed**"

    def share(kind: str) -> str:
        return f"{sampler.share(kind, cores):.0%}"

    outside = max(0.0, sampler.machine_share - sum(sampler.share(k, cores) for k in KINDS))
    browsers = {"nice": "nice 19, in a session whose scheduler autogroup is at nice 19 (`--browsers nice`)",
                "idle": "in a CPU cgroup at idle priority, running only on CPU time nobody else wants "
                        "(`--browsers idle`)",
                "normal": "default priority (`--browsers normal`)"}[args.browsers]
    print(f"\n## Workshop load: {args.users} participants on one lab server (`benchmarks/workshop_load.py`)\n")
    print(f"{time.strftime('%d %B %Y')}, {cpu_model()}, {cores} cores. {args.users} participants (contexts of one "
          f"headless Chromium) arriving {args.stagger:g} s apart; each run: SimCLR on shapes, {args.seconds} "
          f"training seconds, seed 1..{args.users} (solo: seed 0, {args.solo_runs} runs); each participant watches "
          "its live panel "
          f"{args.watch:g} s. Browsers: {browsers}. Load window {sampler.wall:.0f} s; the whole benchmark "
          f"{wall_total:.0f} s.\n")
    rows = [
        ("participants", f"{args.users}", ""),
        ("interactions: without a job / waiting for a run", f"{len(quick)} / {len(waiting)}", ""),
        ("latency without a job, until visible: p50 / p95 / max",
         f"{_s(pct(quick, 50))} s / {_s(p95)} s / {_s(max(quick, default=float('nan')))} s",
         f"p95 < {TARGET_P95:g} s: {verdict(p95 < TARGET_P95)}"),
        ("the server's part of it (request sent to script finished, at the browser): p50 / p95 / max",
         f"{_s(pct(quick_server, 50))} s / {_s(pct(quick_server, 95))} s / "
         f"{_s(max(quick_server, default=float('nan')))} s", ""),
        ("the server's part, measured inside the server (rerun request handled to script run finished), every "
         "page's or action's script run in the load window: n / p50 / p95 / max",
         f"{len(server['full'])} / {_s(pct(server['full'], 50))} s / {_s(pct(server['full'], 95))} s / "
         f"{_s(max(server['full'], default=float('nan')))} s",
         f"p95 < {TARGET_P95:g} s: {verdict(pct(server['full'], 95) < TARGET_P95)}"),
        ("the same for the live panels' refreshes (fragment runs): n / p50 / p95",
         f"{len(server['fragment'])} / {_s(pct(server['fragment'], 50))} s / {_s(pct(server['fragment'], 95))} s",
         ""),
        ("the server's event loop: how late it ran a timer, p95 / max",
         f"{_s(pct(server['lag'], 95))} s / {_s(max(server['lag'], default=float('nan')))} s", ""),
        ("waiting for a run, until its end is visible: median / max",
         f"{_s(pct(waiting, 50))} s / {_s(max(waiting, default=float('nan')))} s", ""),
        ("errors: exceptions / st.error / connection banner / timeouts in the browser / timeouts at the server / "
         "other / console", f"{count['stException']} / {count['stAlertContentError']} / {count['stConnectionStatus']}"
         f" / {len(timeouts) - server_timeouts} / {server_timeouts} / {other} / {len(console)}",
         f"0: {verdict(not errors and not console)}"),
        ("participants who submitted a run", f"{len(submitted)} of {len(users)}", ""),
        ("runs lost", f"{len(lost)} of {len(submitted)}" + (f" ({', '.join(lost)})" if lost else ""),
         f"0: {verdict(not lost)}"),
        ("live-panel refreshes the pages asked for, all participants", f"{refreshes:.1f} per second", ""),
        (f"solo runs' steps (each alone on the server): {' / '.join(map(str, alone))}; against their median",
         f"{min(alone) / solo_steps:.2f} to {max(alone) / solo_steps:.2f}" if alone else "no solo run",
         "(the noise of one run)"),
        (f"steps against the solo runs' median {solo_steps:g}: min / median" if solo_steps else "steps",
         f"{min(ratios):.2f} / {float(np.median(ratios)):.2f}" if ratios else "no run to compare",
         f"every run >= {TARGET_RATIO:g}: {verdict(bool(ratios) and min(ratios) >= TARGET_RATIO)}"),
        ("CPU share of the machine: server / training workers / dispatcher",
         f"{share('server')} / {share('workers')} / {share('dispatcher')}", ""),
        ("CPU share: browsers / this benchmark with its Playwright driver",
         f"{share('browsers')} / {share('benchmark')}", ""),
        ("machine busy: all processes / none of the above", f"{sampler.machine_share:.0%} / {outside:.0%}", ""),
        ("machine", f"{cpu_model()}, {cores} cores", ""),
    ]
    print("| measure | measured | target |")
    print("| --- | --- | --- |")
    for row in rows:
        print(f"| {' | '.join(row)} |")

    print("\nPer interaction, seconds from the action until its result is visible, and the server's part (its rerun "
          "request sent to its script_finished received, both stamped by the browser's network stack). Solo: the "
          "median of the solo participants, each alone on the server with no other run training (before its run "
          "started or after it ended); the first of them also paid the server's first script run and the first load "
          "of the DINO checkpoint.\n")
    print("| interaction | waits for a run | solo | n | p50 | p95 | max | server p50 | server p95 | timeouts |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in dict.fromkeys(s.name for s in steps):
        xs = [s for s in steps if s.name == name]
        vals = [s.seconds for s in xs]
        at_browser = [s.server for s in xs if s.server is not None]
        solo_vals = [s.seconds for u in solos for s in u.steps if s.name == name]
        print(f"| {name} | {'yes' if xs[0].waits else 'no'} | {_s(pct(solo_vals, 50))} | {len(vals)} | "
              f"{_s(pct(vals, 50))} | {_s(pct(vals, 95))} | {_s(max(vals))} | {_s(pct(at_browser, 50))} | "
              f"{_s(pct(at_browser, 95))} | {sum(not s.ok for s in xs)} |")

    reference = f"{solo_steps:g}" if solo_steps else "(no solo run finished)"
    print(f"\nPer run: steps from the run store, against the solo runs' median {reference}; queue wait = started - "
          "created; positions: the queue positions its owner's live panel showed while watching.\n")
    print("| participant | run | status | steps | vs solo | training s | queue wait s | created to ended s "
          "| positions |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    table = [(f"{r.owner_label} (alone)", r, []) for r in solo_runs]
    for u in users:
        table += [(u.name, r, u.positions) for r in runs.get(u.name, [])] or [(u.name, None, u.positions)]
    for who, r, positions in table:
        seen = " > ".join(map(str, positions))
        if r is None:
            print(f"| {who} | none | not in the store | | | | | | {seen} |")
            continue
        n = r.summary.get("steps")
        ratio = f"{n / solo_steps:.2f}" if n is not None and solo_steps else ""
        wait = f"{r.started - r.created:.1f}" if r.started else "never started"
        ended = f"{r.ended - r.created:.1f}" if r.ended else ""
        print(f"| {who} | {r.id} | {r.status} | {n} | {ratio} | {r.summary.get('seconds')} | {wait} | {ended} "
              f"| {seen} |")

    problems = [f"{u.name}: {e}" for u in [*solos, *users] for e in u.errors]
    problems += [f"{u.name}: console: {c}" for u in [*solos, *users] for c in dict.fromkeys(u.console)]
    if problems:
        print("\nErrors the participants saw:\n")
        for line in problems:
            print(f"- {line}")
    notes = sorted({n.split(": ", 1)[1] for u in [*solos, *users] for n in u.notes})
    offline = sorted({url for u in [*solos, *users] for url in u.offline})
    if notes or offline:
        print("\nNot counted as errors:\n")
        for n in notes:
            print(f"- an expected st.error verdict: {n}")
        for url in offline:
            print(f"- a resource of another host this closed network cannot resolve: {url}")
    print("\nServer and worker logs:\n")
    logs = [("server (stdout and stderr)", home / "server.log"), ("runs/dispatcher.log", store.root / "dispatcher.log")]
    logs += [(f"runs/{r.id}/worker.log", store.run_dir(r.id) / "worker.log") for r in all_runs(store)]
    for label, path in logs:
        found = log_problems(path)
        print(f"- {label}: {'no traceback or error line' if not found else ''}")
        for line in found:
            print(f"    - {line}")


# --------------------------------------------------------------------------- main


async def drive(args, base: str, store, server: subprocess.Popen, home: Path, code: str, png: Path, chromium: str):
    from playwright.async_api import async_playwright

    cores = len(os.sched_getaffinity(0))
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        # The same run (seed 0) alone, several times: their spread is the noise of one run on this machine.
        solos = [User(f"solo{k + 1}", 0) for k in range(args.solo_runs)]
        for solo in solos:
            print(f"{solo.name}: {args.seconds} training seconds, one participant alone...", flush=True)
            await participant(browser, base, solo, args, code, png, solo=True)
        sampler = CpuSampler(server.pid, store.root)
        users = [User(f"user{i + 1:02d}", i + 1) for i in range(args.users)]
        print(f"load: {args.users} participants...", flush=True)
        hold = asyncio.Event()
        sampler.start()
        window = [time.time(), time.time()]  # the load window, as the server's rerun log stamps time
        tasks = [asyncio.create_task(participant(browser, base, u, args, code, png, solo=False,
                                                 start_after=i * args.stagger, hold=hold))
                 for i, u in enumerate(users)]
        deadline = time.monotonic() + args.users * (args.seconds + 90) + 600
        await until_runs_ended(store, users, deadline)
        # Every run has ended in the store: each page gets --step-timeout seconds to show it.
        grace = time.monotonic() + args.step_timeout
        while not all(u.at_end for u in users) and time.monotonic() < grace:
            await asyncio.sleep(0.5)
        sampler.stop()
        window[1] = time.time()
        hold.set()
        for u in users:
            if not u.at_end:
                u.errors.append(f"still waiting for its page {args.step_timeout:g} s after every run had ended in the "
                                "store (or the benchmark's deadline passed)")
        _, pending = await asyncio.wait(tasks, timeout=30)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await browser.close()
    return solos, users, sampler, cores, tuple(window)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=10, help="participants in the load phase")
    p.add_argument("--seconds", type=int, default=20, help="training seconds of every run (the solo ones too)")
    p.add_argument("--solo-runs", type=int, default=3, help="solo runs before the load: their median is the reference")
    p.add_argument("--watch", type=float, default=15.0, help="seconds each participant watches its live panel")
    p.add_argument("--stagger", type=float, default=1.0, help="seconds between two participants' arrivals")
    p.add_argument("--step-timeout", type=float, default=60.0, help="seconds before an interaction counts as timed out")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--keep", action="store_true", help="keep the temporary SSLCORE_HOME (logs, runs) and print it")
    p.add_argument("--browsers", choices=("nice", "idle", "normal"), default="nice",
                   help="Chromium's CPU priority: nice 19 in an autogroup at nice 19, a cgroup at idle priority "
                        "(root), or the default (see the docstring)")
    args = p.parse_args()

    from PIL import Image

    from sslcore.runs import RunStore

    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="workshop_load-"))
    home = tmp / "home"
    home.mkdir()
    png = tmp / "upload.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(png)
    chromium = CHROMIUM if args.browsers == "normal" else str(launcher(tmp, args.browsers))
    code = "bench-code"
    port = args.port or free_port()
    server = start_server(home, port, code, home / "server.log")
    try:
        store = RunStore(home / "runs")
        solos, users, sampler, cores, window = asyncio.run(
            drive(args, f"http://127.0.0.1:{port}", store, server, home, code, png, chromium))
        report(args, solos, users, store, sampler, time.monotonic() - t_start, home, cores,
               server_runs(home / RERUN_LOG, window))
    finally:
        stop_server(server, home / "runs")
        if args.browsers == "idle":
            try:
                idle_cgroup().rmdir()  # empty once the browsers have exited
            except OSError:
                pass
        if args.keep:
            print(f"\nkept: {home} (server.log, runs/dispatcher.log, runs/<run>/worker.log)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
