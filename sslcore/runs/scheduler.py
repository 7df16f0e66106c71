"""One queue for every run: slots sized to the machine, a fair order across participants, owners.

Why slots: two CPU cores shared by four training processes, each with as many torch threads as
there are cores, ran 17-26 steps each in 60 s where one alone ran 494 (threads oversubscribed and
stalled each other's parallel regions). A slot is a share of the machine (torch threads, or a GPU)
that one run holds at a time; runs beyond the slots wait in the queue, and since a time budget
counts training only, a run that waited still gets all of it.

Why our own queue on the run store rather than a task-queue library: a single machine needs no
broker (Celery and RQ need Redis; Huey's SQLite backend orders by priority and arrival only), and
what matters here is domain state those libraries do not hold: a fair order by participant,
per-participant caps, pausing, cancelling a process group, and resuming a run from its checkpoint.
The decisions are one SQLite transaction each (:meth:`RunStore.transaction`), so the dispatcher,
foreground ``sslcore train`` processes and every browser session agree without a server.

The queue is fair: each queued run is ranked by how many runs its owner already started or has
queued ahead of it, then by arrival, so nobody's second run starts before everyone's first.
"""

from __future__ import annotations

import heapq
import os
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from sslcore.runs.config import RunConfig
from sslcore.runs.store import RESUMABLE, RunRecord, RunStore, pid_alive, process_start


class QueueError(ValueError):
    """A refused queue operation (cap reached, nothing to cancel, not resumable), with the reason."""


# --------------------------------------------------------------------------- who acts


@dataclass(frozen=True)
class Actor:
    """Who asks: a workshop participant (``id``), or the machine's own user (``id`` '': the CLI and
    the single-user app). A teacher may act on every run."""

    id: str = ""
    name: str = "local"
    teacher: bool = False


# The CLI runs as the server's own user, who can already do anything to the store's files.
OPERATOR = Actor(teacher=True)


def may_modify(record: RunRecord, actor: Actor) -> bool:
    """Whether ``actor`` may stop, cancel, resume or delete ``record`` (reference runs: nobody)."""
    return not record.reference and (actor.teacher or record.owner == actor.id)


_PAST = {"stop": "stopped", "cancel": "cancelled", "resume": "resumed", "delete": "deleted"}


def check_may_modify(record: RunRecord, actor: Actor, verb: str) -> None:
    """Raise PermissionError unless ``actor`` may ``verb`` (stop, cancel, resume, delete) ``record``."""
    if record.reference:
        raise PermissionError(f"{record.id} is a reference run shipped with the lab: it cannot be {_PAST[verb]}")
    if not may_modify(record, actor):
        raise PermissionError(f"{record.id} belongs to {record.owner_label}: only they or the teacher can {verb} it")


# --------------------------------------------------------------------------- slots


@dataclass(frozen=True)
class SlotPolicy:
    """How many runs train at once, and with what: ``threads`` torch threads each, on ``devices[slot]``.

    ``slots * threads`` never exceeds the cores; the app's own process gets ``app_threads``.
    """

    slots: int
    threads: int
    devices: tuple[str, ...]
    cores: int

    @property
    def app_threads(self) -> int:
        return max(1, self.cores - self.slots * self.threads)

    @classmethod
    def for_machine(cls, cores: int | None = None, gpus: int | None = None,
                    env: Mapping[str, str] = os.environ) -> "SlotPolicy":
        """The default for this machine, overridden by ``SSLCORE_SLOTS`` and ``SSLCORE_THREADS_PER_SLOT``.

        A GPU per slot when there are GPUs (each run trains alone on its GPU; the CPU threads feed it).
        On a CPU, one slot up to 3 cores (a 2-core machine runs one run at a time at full speed);
        from 4 cores one core stays with the app and the rest go to slots of 2 threads (4 from 16
        cores): small convnets gain little from more threads, so more slots serve more people.
        """
        if cores is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if gpus is None:
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus:
            slots, threads = gpus, max(1, (cores - 1) // gpus)
        elif cores <= 3:
            slots, threads = 1, cores
        else:
            per = 4 if cores >= 16 else 2
            slots = max(1, (cores - 1) // per)
            threads = (cores - 1) // slots
        if env.get("SSLCORE_SLOTS"):
            slots = _positive(env["SSLCORE_SLOTS"], "SSLCORE_SLOTS")
            threads = max(1, (cores - 1 if cores > 3 else cores) // slots)
        if env.get("SSLCORE_THREADS_PER_SLOT"):
            threads = _positive(env["SSLCORE_THREADS_PER_SLOT"], "SSLCORE_THREADS_PER_SLOT")
        threads = max(1, min(threads, cores // slots)) if slots <= cores else 1
        devices = tuple(f"cuda:{i % gpus}" if gpus else "cpu" for i in range(slots))
        return cls(slots, threads, devices, cores)

    @classmethod
    def current(cls, store: RunStore) -> "SlotPolicy":
        """The policy the dispatcher serving ``store`` announced, else this machine's default."""
        stored = store.setting("slot_policy")
        if stored:
            return cls(stored["slots"], stored["threads"], tuple(stored["devices"]), stored["cores"])
        return cls.for_machine()

    def announce(self, store: RunStore) -> None:
        store.set_setting("slot_policy", asdict(self))

    def describe(self) -> str:
        where = "GPU" if self.devices[0].startswith("cuda") else "CPU"
        return (f"{self.slots} slot{'s' if self.slots > 1 else ''} ({where}), {self.threads} torch thread"
                f"{'s' if self.threads > 1 else ''} each, on {self.cores} cores")


def _positive(value: str, name: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return n


# --------------------------------------------------------------------------- the order


def fair_order(records: Sequence[RunRecord], since: float = 0.0) -> list[RunRecord]:
    """The queued runs among ``records`` in the order they get slots: by how many runs their owner
    started since ``since`` (the class's start) or queued ahead of them, then by arrival. One owner
    alone gets first come, first served."""
    seen = Counter(r.owner for r in records if r.started is not None and r.started >= since and not r.reference
                   and r.status != "queued")
    ranked = []
    for r in sorted((r for r in records if r.status == "queued"), key=lambda r: (r.queued_at or r.created, r.id)):
        ranked.append((seen[r.owner], r.queued_at or r.created, r.id, r))
        seen[r.owner] += 1
    return [entry[-1] for entry in sorted(ranked, key=lambda e: e[:3])]


def class_started(store: RunStore) -> float:
    """When the current class began (the teacher's last reset); fairness counts runs since then."""
    return float(store.setting("class_started", 0.0))


# --------------------------------------------------------------------------- submitting


def submit(store: RunStore, configs: Sequence[RunConfig], actor: Actor = OPERATOR, *, group_id: str = "",
           launcher: str = "worker", max_queued: int | None = None) -> list[str]:
    """Queue ``configs`` for ``actor``; returns their run ids.

    Refuses (:class:`QueueError`) when they would take ``actor`` past ``max_queued`` waiting runs.
    A foreground run (``launcher='foreground'``) is started by this process once :func:`grant`
    gives it a slot; the others by the dispatcher (:func:`sslcore.runs.dispatcher.ensure_dispatcher`).
    """
    if not configs:
        raise QueueError("nothing to queue")
    pid = os.getpid() if launcher == "foreground" else None
    with store.transaction() as db:
        if max_queued is not None and actor.id:
            waiting = db.execute("SELECT COUNT(*) FROM runs WHERE owner = ? AND status = 'queued'",
                                 (actor.id,)).fetchone()[0]
            if waiting + len(configs) > max_queued:
                raise QueueError(f"{actor.name} has {waiting} run{'s' if waiting != 1 else ''} waiting and may queue "
                                 f"at most {max_queued}: wait for one to start, or cancel one")
        return [store.create(asdict(c.with_dataset_defaults()), group_id, owner=actor.id, owner_name=actor.name,
                             launcher=launcher, pid=pid, db=db) for c in configs]


@dataclass(frozen=True)
class Grant:
    """A slot given to a run: the run may start now, with ``threads`` torch threads on ``device``."""

    run_id: str
    slot: int
    threads: int
    device: str


def grant(store: RunStore, policy: SlotPolicy, run_id: str | None = None) -> list[Grant]:
    """Give free slots to the queued runs at the head of the fair order, in one transaction.

    The dispatcher calls it without ``run_id`` and gets the worker runs it must start; a foreground
    run at the head keeps its slot for its own process, which calls it with its ``run_id``. Nothing
    is granted while the queue is paused.
    """
    store.reap()
    if store.setting("paused", False):
        return []
    with store.transaction() as db:
        busy = {r[0] for r in db.execute("SELECT slot FROM runs WHERE status IN ('running', 'stopping')")}
        free = [s for s in range(policy.slots) if s not in busy]
        since = class_started(store)
        order = fair_order([store.record(row) for row in db.execute(
            "SELECT * FROM runs WHERE status = 'queued' OR started >= ?", (since,))], since)
        grants = []
        for slot, record in zip(free, order):
            mine = record.id == run_id if run_id is not None else record.launcher == "worker"
            if not mine:
                continue
            # The granting process holds the run until its worker reports its own pid: should it die
            # first, the reaper finds a dead pid and marks the run interrupted, never stuck.
            now = time.time()
            db.execute("UPDATE runs SET status = 'running', slot = ?, threads = ?, pid = ?, pid_start = ?,"
                       " updated = ?, started = COALESCE(started, ?) WHERE id = ? AND status = 'queued'",
                       (slot, policy.threads, os.getpid(), process_start(os.getpid()), now, now, record.id))
            grants.append(Grant(record.id, slot, policy.threads, policy.devices[slot]))
        return grants


# --------------------------------------------------------------------------- acting on runs


def stop(store: RunStore, run_id: str, actor: Actor) -> None:
    """Ask a running run to end after its current step, with its checkpoint and final kNN."""
    record = store.get(run_id)
    check_may_modify(record, actor, "stop")
    if record.status == "queued":
        cancel(store, run_id, actor)
    elif record.status in ("running", "stopping"):
        store.request_stop(run_id)
    else:
        raise QueueError(f"{run_id} is {record.status}: there is nothing to stop")


def cancel(store: RunStore, run_id: str, actor: Actor) -> None:
    """End a queued run before it starts, or a running one now (its process group gets SIGTERM; the
    run keeps its last periodic checkpoint and can be resumed)."""
    record = store.get(run_id)
    check_may_modify(record, actor, "cancel")
    by = f"cancelled by {actor.name}" + (" (teacher)" if actor.teacher and record.owner != actor.id else "")
    if record.status == "queued" and store.set_status(run_id, "cancelled", error=f"{by} before it started",
                                                       only_if=("queued",)):
        return
    if record.status in ("running", "stopping", "queued"):
        record = store.get(run_id)  # it may have started meanwhile
        if store.set_status(run_id, "cancelled", error=by, only_if=("running", "stopping")):
            signal_run(record, signal.SIGTERM)
            return
    raise QueueError(f"{run_id} is {store.get(run_id).status}: there is nothing to cancel")


def signal_run(record: RunRecord, sig: int) -> bool:
    """Send ``sig`` to the run's process: the whole group of a dispatcher's worker (it leads its own
    session), the process alone for a foreground ``sslcore train`` (its group is the user's shell job)."""
    if not pid_alive(record.pid, record.pid_start) or record.pid == os.getpid():
        return False
    try:
        if record.launcher == "worker":
            os.killpg(record.pid, sig)
        else:
            os.kill(record.pid, sig)
    except ProcessLookupError:
        return False
    return True


def resume(store: RunStore, run_id: str, actor: Actor, max_queued: int | None = None) -> None:
    """Queue an interrupted, stopped or cancelled run again; its worker continues from its last
    train state to the run's budget."""
    record = store.get(run_id)
    check_may_modify(record, actor, "resume")
    if record.status not in RESUMABLE:
        raise QueueError(f"{run_id} is {record.status}: only {', '.join(RESUMABLE)} runs can be resumed")
    with store.transaction() as db:
        if max_queued is not None and actor.id:
            waiting = db.execute("SELECT COUNT(*) FROM runs WHERE owner = ? AND status = 'queued'",
                                 (record.owner,)).fetchone()[0]
            if waiting >= max_queued:
                raise QueueError(f"{record.owner_label} already has {waiting} runs waiting (at most {max_queued})")
        changed = db.execute("UPDATE runs SET status = 'queued', queued_at = ?, updated = ?, stop_requested = 0,"
                             " launcher = 'worker', pid = NULL, pid_start = NULL, slot = NULL, error = '',"
                             " resumes = resumes + 1 WHERE id = ? AND status IN ({})".format(
                                 ", ".join("?" * len(RESUMABLE))),
                             (time.time(), time.time(), run_id, *RESUMABLE)).rowcount
    if not changed:
        raise QueueError(f"{run_id} changed meanwhile: it is {store.get(run_id).status}")


def delete(store: RunStore, run_id: str, actor: Actor) -> None:
    record = store.get(run_id)
    check_may_modify(record, actor, "delete")
    store.delete(run_id)


# --------------------------------------------------------------------------- what the pages show


@dataclass(frozen=True)
class QueueEntry:
    """A run in the queue: ``position`` 0 while it trains, 1 for the next to start, and so on;
    ``starts_in``/``ends_in`` are estimates in seconds from now (None while the queue is paused)."""

    record: RunRecord
    position: int
    starts_in: float | None
    ends_in: float | None


# Set-up, data and the kNN checks that pause the training clock, on top of a budget's seconds.
OVERHEAD_SECONDS, OVERHEAD_SHARE = 10.0, 0.15


def expected_seconds(config: Mapping, done_steps: int, done_seconds: float, rates: Mapping[str, float]) -> float:
    """Wall seconds a run still needs: its time budget left, or its steps left at ``rates[method]``
    steps per second (5 when no run of that method has finished yet), plus evaluation overhead."""
    left = []
    if config.get("max_seconds"):
        left.append(config["max_seconds"] - done_seconds)
    if config.get("steps"):
        left.append((config["steps"] - done_steps) / rates.get(config["method"], 5.0))
    training = max(0.0, min(left)) if left else 0.0
    return training * (1 + OVERHEAD_SHARE) + (OVERHEAD_SECONDS if done_steps == 0 else 0.0)


def step_rates(records: Sequence[RunRecord]) -> dict[str, float]:
    """Steps per training second by method, from finished runs (the latest of each method)."""
    rates: dict[str, float] = {}
    for r in records:
        s = r.summary
        if r.status == "finished" and not r.reference and s.get("steps") and s.get("seconds"):
            rates.setdefault(r.method, s["steps"] / s["seconds"])
    return rates


def queue(store: RunStore, policy: SlotPolicy | None = None) -> list[QueueEntry]:
    """Running runs (position 0), then queued ones in the order they will start, with estimates."""
    policy = policy or SlotPolicy.current(store)
    records = store.list()
    rates = step_rates(records)
    running = [r for r in records if r.status in ("running", "stopping")]
    order = fair_order(records, class_started(store))
    free_at = [0.0] * max(0, policy.slots - len(running))
    entries = []
    for r in running:
        step, seconds = store.last_step(r.id)
        end = expected_seconds(r.config, step, seconds, rates)
        free_at.append(end)
        entries.append(QueueEntry(r, 0, 0.0, end))
    heapq.heapify(free_at)
    paused = bool(store.setting("paused", False))
    for i, r in enumerate(order, start=1):
        start = heapq.heappop(free_at) if free_at else 0.0
        end = start + expected_seconds(r.config, 0, 0.0, rates)
        heapq.heappush(free_at, end)
        entries.append(QueueEntry(r, i, None if paused else start, None if paused else end))
    return entries


def queue_json(entries: Sequence[QueueEntry]) -> list[dict]:
    """The queue as JSON-ready rows (``sslcore queue --json``)."""
    return [{"run_id": e.record.id, "position": e.position, "status": e.record.status, "owner": e.record.owner_label,
             "method": e.record.method, "dataset": e.record.dataset, "starts_in_seconds": _round(e.starts_in),
             "ends_in_seconds": _round(e.ends_in)} for e in entries]


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def describe_wait(seconds: float | None) -> str:
    """'now', 'in about 3 min' or 'when the teacher resumes the queue'."""
    if seconds is None:
        return "when the teacher resumes the queue"
    if seconds < 5:
        return "now"
    if seconds < 90:
        return f"in about {seconds:.0f} s"
    return f"in about {seconds / 60:.0f} min"


