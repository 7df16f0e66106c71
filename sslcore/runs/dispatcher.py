"""The dispatcher: one process per run store that starts queued runs in worker processes as slots free up.

It is a detached process of its own (``sslcore dispatcher``), so it survives the Streamlit server
restarting and works without the app: whoever queues a run calls :func:`ensure_dispatcher`, which
starts one unless one already holds the store's lock file. Each loop it grants free slots
(:func:`~sslcore.runs.scheduler.grant`), starts a worker per grant, marks runs whose process died
as interrupted (:meth:`RunStore.reap`), makes sure cancelled runs' processes are gone, and it exits
after a while with nothing queued or running.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO

from sslcore.runs.config import RunConfig
from sslcore.runs.execute import RunCancelled, execute
from sslcore.runs.scheduler import Grant, SlotPolicy, grant, signal_run
from sslcore.runs.store import ACTIVE, RunStore, pid_alive

LOCK_FILE = "dispatcher.lock"
KILL_AFTER_SECONDS = 10.0  # a cancelled worker that ignores SIGTERM this long gets SIGKILL
EXIT_GRACE_SECONDS = 5.0  # the longest a worker's exit holds back the next run


def _try_lock(path: Path, inherited_fd: int | None = None) -> IO | None:
    """The open lock file, exclusively locked by this process; None when another process holds it.

    ``inherited_fd`` is a descriptor of the lock file that the starting process locked and passed
    down (flock locks belong to the open file, so the lock is already ours and taking it again is a no-op).
    """
    f = open(inherited_fd, "a+") if inherited_fd is not None else open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def ensure_dispatcher(store: RunStore) -> bool:
    """Start a detached dispatcher for ``store`` unless one runs; returns whether this call started one.

    The caller takes the store's lock itself and hands it to the new process, so two callers racing
    (two pages, a page and ``sslcore submit``) never start two, and a second call made before the first
    dispatcher has even started finds it running.
    """
    lock = _try_lock(store.root / LOCK_FILE)
    if lock is None:
        return False
    idle = os.environ.get("SSLCORE_DISPATCHER_IDLE_EXIT", "120")
    with lock, open(store.root / "dispatcher.log", "ab") as out:
        subprocess.Popen([sys.executable, "-m", "sslcore", "dispatcher", "--root", str(store.root), "--idle-exit", idle,
                          "--lock-fd", str(lock.fileno())], pass_fds=(lock.fileno(),),
                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return True


def spawn_worker(store: RunStore, g: Grant) -> subprocess.Popen:
    """Start run ``g.run_id`` in a worker process that leads its own session (so a cancel can end its
    whole process group), with the slot's threads and device."""
    env = {**os.environ, "OMP_NUM_THREADS": str(g.threads), "MKL_NUM_THREADS": str(g.threads)}
    if g.device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = g.device.split(":", 1)[1]
    with open(store.run_dir(g.run_id) / "worker.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sslcore", "worker", "--root", str(store.root),
                                 "--threads", str(g.threads), g.run_id],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    store.set_status(g.run_id, "running", pid=proc.pid, only_if=("running",))
    return proc


def finish_cancelled(store: RunStore, now: float) -> None:
    """SIGKILL the process group of a run cancelled over :data:`KILL_AFTER_SECONDS` ago that still lives."""
    for r in store.list(status=("cancelled",)):
        if r.ended and now - r.ended > KILL_AFTER_SECONDS and now - r.ended < 600 and pid_alive(r.pid, r.pid_start):
            signal_run(r, signal.SIGKILL)


def dispatch(store: RunStore, policy: SlotPolicy | None = None, idle_exit: float = 120.0, poll: float = 0.5,
             lock_fd: int | None = None) -> int:
    """Serve ``store`` until nothing has been queued or running for ``idle_exit`` seconds.

    Returns 0, or 1 at once when another dispatcher already serves the store. ``lock_fd``: the store's
    lock, already taken by :func:`ensure_dispatcher` and inherited.
    """
    lock = _try_lock(store.root / LOCK_FILE, lock_fd)
    if lock is None:
        return 1
    policy = policy or SlotPolicy.for_machine()
    policy.announce(store)  # foreground runs and the pages read the slots from the store
    print(f"dispatcher {os.getpid()} serving {store.root}: {policy.describe()}", flush=True)
    children: list[subprocess.Popen] = []  # workers, each started with its run id as last argument
    waited: set[int] = set()
    idle_since = time.monotonic()
    while True:
        for c in children:
            if c.pid not in waited and c.poll() is None and _ended(store, c.args[-1]):
                # Its run has ended but its process is still exiting: the next run waits for that core.
                waited.add(c.pid)
                try:
                    c.wait(timeout=EXIT_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
        for g in grant(store, policy):
            print(f"start {g.run_id} in slot {g.slot} ({g.threads} threads, {g.device})", flush=True)
            try:
                children.append(spawn_worker(store, g))
            except OSError as e:
                store.set_status(g.run_id, "failed", error=f"could not start its worker: {e}", only_if=("running",))
        children = [c for c in children if c.poll() is None]  # reap finished workers (no zombies)
        finish_cancelled(store, time.time())
        if children or store.list(status=ACTIVE):
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > idle_exit:
            print("idle: dispatcher exits", flush=True)
            lock.close()
            return 0
        time.sleep(poll)


def _ended(store: RunStore, run_id: str) -> bool:
    try:
        return store.get(run_id).status not in ACTIVE
    except KeyError:  # deleted
        return True


def yield_to_the_app(niceness: int) -> None:
    """Lower this process's CPU priority, so a page request on a busy lab server runs at once and training
    only loses the CPU time the request really takes.

    Linux shares the CPU between sessions first (autogroups; every worker leads its own session), so
    the session's niceness is raised too; ``nice`` alone would change nothing against the server.
    """
    os.nice(niceness)
    try:
        Path("/proc/self/autogroup").write_text(str(niceness))
    except OSError:  # no autogroups (another OS, a kernel without them): nice is what there is
        pass


def work(store: RunStore, run_id: str, threads: int) -> None:
    """A worker process: train one granted run with ``threads`` torch threads at ``SSLCORE_WORKER_NICE``
    (default 10, 0 keeps the worker's priority); SIGTERM cancels it."""
    import torch

    torch.set_num_threads(threads)
    niceness = int(os.environ.get("SSLCORE_WORKER_NICE", "10"))
    if niceness > 0:
        yield_to_the_app(niceness)

    def on_term(signum, frame):
        raise RunCancelled()

    signal.signal(signal.SIGTERM, on_term)
    record = store.get(run_id)
    try:
        # A resumed run (interrupted, stopped, cancelled) continues from its train state.
        execute(RunConfig.from_dict(record.config), store, run_id, resume=record.resumes > 0)
    except RunCancelled:
        store.set_status(run_id, "cancelled", only_if=ACTIVE)
    except Exception as e:  # noqa: BLE001 - a failure must land in the store with its reason
        traceback.print_exc()
        store.set_status(run_id, "failed", error=f"{type(e).__name__}: {e}", only_if=ACTIVE)
