"""The run store: one folder per run (config, metrics, checkpoints) indexed in SQLite.

SQLite in WAL mode lets workers write metrics while any number of browser sessions read them.
Every call opens its own short-lived connection, so the store is safe to share between threads
and processes; :meth:`RunStore.transaction` gives the scheduler one write lock for a decision
that must not interleave with another process's (which run gets a free slot).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from sslcore.paths import atomic_write, sslcore_home

ACTIVE = ("queued", "running", "stopping")
DONE = ("finished", "stopped", "failed", "diverged", "cancelled", "interrupted")
# Ended before their budget with a resumable train state (a run cancelled while queued has none).
RESUMABLE = ("interrupted", "stopped", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, status TEXT NOT NULL,
    method TEXT NOT NULL, dataset TEXT NOT NULL, backbone TEXT NOT NULL, config TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}', error TEXT NOT NULL DEFAULT '', pid INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0, group_id TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, seconds REAL NOT NULL, name TEXT NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, step);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Columns added after the first release; a store written by an older version gains them on open.
_ADDED_COLUMNS = {
    "owner": "TEXT NOT NULL DEFAULT ''",  # participant id; '' is the machine's own user (CLI, single-user app)
    "owner_name": "TEXT NOT NULL DEFAULT ''",
    "reference": "INTEGER NOT NULL DEFAULT 0",  # a starter-pack run shipped with the lab
    "launcher": "TEXT NOT NULL DEFAULT 'worker'",  # 'worker': the dispatcher starts it; 'foreground': its CLI does
    "queued_at": "REAL",  # when it (re-)entered the queue
    "started": "REAL",
    "ended": "REAL",
    "pid_start": "INTEGER",  # the process's start time, so a reused pid is not mistaken for the worker
    "slot": "INTEGER",
    "threads": "INTEGER",
    "resumes": "INTEGER NOT NULL DEFAULT 0",
}


@dataclass(frozen=True)
class RunRecord:
    id: str
    created: float
    updated: float
    status: str
    method: str
    dataset: str
    backbone: str
    config: dict[str, Any]
    summary: dict[str, Any]
    error: str
    pid: int | None
    stop_requested: bool
    group_id: str
    owner: str = ""
    owner_name: str = ""
    reference: bool = False
    launcher: str = "worker"
    queued_at: float | None = None
    started: float | None = None
    ended: float | None = None
    pid_start: int | None = None
    slot: int | None = None
    threads: int | None = None
    resumes: int = 0

    @property
    def owner_label(self) -> str:
        return "reference" if self.reference else (self.owner_name or "local")


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where /proc has no answer."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name before ')' may hold spaces


def pid_alive(pid: int | None, started: int | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie), and is the same process that started at ``started`` when given."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(0)
    if fields[0] == "Z":  # a finished child nobody reaped
        return False
    return started is None or int(fields[19]) == started


class RunStore:
    """Runs under ``root`` (default ``$SSLCORE_HOME/runs``): ``root/runs.db`` and ``root/<run id>/``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else sslcore_home() / "runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "runs.db"
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            for name, decl in _ADDED_COLUMNS.items():
                if name not in have:
                    try:
                        db.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")
                    except sqlite3.OperationalError as e:  # another process added it first
                        if "duplicate column" not in str(e):
                            raise
            db.execute("CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status)")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        # WAL's own recommendation: fsync at checkpoints, not at every commit. A crash of any process
        # loses nothing; a power cut may lose the last commits (a run then reads as interrupted).
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode, for modules that keep tables of their own beside the runs."""
        with closing(self._connect()) as db:
            yield db

    def _write(self, sql: str, args: Iterable[Any] = ()) -> int:
        with closing(self._connect()) as db:
            return db.execute(sql, tuple(args)).rowcount

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): no other process writes until it commits."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def run_dir(self, run_id: str) -> Path:
        """The folder of ``run_id``; refuses ids that would escape the store."""
        path = (self.root / run_id).resolve()
        if path.parent != self.root.resolve() or not run_id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"invalid run id {run_id!r}")
        return path

    def create(self, config: dict[str, Any], group_id: str = "", *, owner: str = "", owner_name: str = "",
               launcher: str = "worker", pid: int | None = None, run_id: str | None = None,
               reference: bool = False, db: sqlite3.Connection | None = None) -> str:
        """Register a queued run with its config; returns its id.

        ``launcher`` says who starts it once it has a slot: the dispatcher ('worker') or the
        process ``pid`` that waits for it in the foreground ('foreground', ``sslcore train``).
        ``db``: an open :meth:`transaction` to insert in (the scheduler's cap check and insert are one).
        """
        if launcher not in ("worker", "foreground"):
            raise ValueError(f"launcher must be 'worker' or 'foreground', got {launcher!r}")
        run_id = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{config['method']}-{secrets.token_hex(3)}"
        run_dir = self.run_dir(run_id)
        run_dir.mkdir()
        atomic_write(run_dir / "config.json", json.dumps(config, indent=2).encode())
        now = time.time()
        sql = ("INSERT INTO runs (id, created, updated, status, method, dataset, backbone, config, group_id, owner,"
               " owner_name, launcher, pid, pid_start, queued_at, reference) VALUES"
               " (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        args = (run_id, now, now, config["method"], config["dataset"], config["backbone"], json.dumps(config),
                group_id, owner, owner_name, launcher, pid, pid and process_start(pid), now, int(reference))
        if db is not None:
            db.execute(sql, args)
        else:
            self._write(sql, args)
        return run_id

    def set_status(self, run_id: str, status: str, *, error: str | None = None, pid: int | None = None,
                   only_if: Iterable[str] | None = None) -> bool:
        """Set ``status`` (and ``error``/``pid``); with ``only_if``, only from one of those statuses.

        Returns whether the row changed: a worker finishing a run the teacher cancelled meanwhile
        must not turn it back into 'finished'.
        """
        if status not in ACTIVE + DONE:
            raise ValueError(f"unknown status {status!r}")
        now = time.time()
        sets, args = ["status = ?", "updated = ?"], [status, now]
        if error is not None:
            sets.append("error = ?"), args.append(error)
        if pid is not None:
            sets += ["pid = ?", "pid_start = ?"]
            args += [pid, process_start(pid)]
        if status in DONE:
            sets.append("ended = ?"), args.append(now)
        where, where_args = "id = ?", [run_id]
        if only_if is not None:
            allowed = tuple(only_if)
            where += f" AND status IN ({', '.join('?' * len(allowed))})"
            where_args += allowed
        return self._write(f"UPDATE runs SET {', '.join(sets)} WHERE {where}", [*args, *where_args]) > 0

    def mark_running(self, run_id: str, pid: int) -> bool:
        """The run's process ``pid`` begins (or resumes) training; False when the run was cancelled meanwhile."""
        now = time.time()
        return self._write("UPDATE runs SET status = 'running', pid = ?, pid_start = ?, updated = ?,"
                           " started = COALESCE(started, ?), error = '' WHERE id = ? AND status IN ('queued', 'running')",
                           (pid, process_start(pid), now, now, run_id)) > 0

    def set_summary(self, run_id: str, summary: dict[str, Any]) -> None:
        self._write("UPDATE runs SET summary = ?, updated = ? WHERE id = ?", (json.dumps(summary), time.time(), run_id))
        atomic_write(self.run_dir(run_id) / "summary.json", json.dumps(summary, indent=2).encode())

    def request_stop(self, run_id: str) -> None:
        """Ask the worker to stop after its current step (it saves a checkpoint first)."""
        self._write("UPDATE runs SET stop_requested = 1, updated = ?,"
                    " status = CASE WHEN status = 'running' THEN 'stopping' ELSE status END WHERE id = ?",
                    (time.time(), run_id))

    def stop_requested(self, run_id: str) -> bool:
        with closing(self._connect()) as db:
            row = db.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def log_metrics(self, run_id: str, step: int, seconds: float, values: dict[str, float]) -> None:
        self.log_steps(run_id, [(step, seconds, values)])

    def log_steps(self, run_id: str, steps: Iterable[tuple[int, float, dict[str, float]]]) -> None:
        """Several steps' ``(step, seconds, values)`` in one transaction: one short hold of the write lock."""
        rows = [(run_id, step, seconds, k, float(v)) for step, seconds, values in steps for k, v in values.items()]
        with self.transaction() as db:  # in autocommit mode each row would be a transaction of its own
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", rows)

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Forget metrics logged after ``after_step`` (a resumed run replays the steps after its checkpoint)."""
        self._write("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, after_step))

    def metrics(self, run_id: str, since_step: int = -1) -> dict[str, tuple[list[int], list[float]]]:
        """``name -> (steps, values)`` of every metric logged after ``since_step``."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT step, name, value FROM metrics WHERE run_id = ? AND step > ?"
                              " ORDER BY step", (run_id, since_step)).fetchall()
        out: dict[str, tuple[list[int], list[float]]] = {}
        for step, name, value in rows:
            steps, values = out.setdefault(name, ([], []))
            steps.append(step)
            values.append(float("nan") if value is None else value)
        return out

    def step_seconds(self, run_id: str) -> dict[int, float]:
        """``step -> training seconds`` when the step was logged, to plot curves against time."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT step, MAX(seconds) FROM metrics WHERE run_id = ? GROUP BY step",
                              (run_id,)).fetchall()
        return {int(step): float(seconds) for step, seconds in rows}

    def last_step(self, run_id: str) -> tuple[int, float]:
        """(step, training seconds) of the latest logged step; (0, 0.0) before the first."""
        with closing(self._connect()) as db:
            row = db.execute("SELECT step, seconds FROM metrics WHERE run_id = ? ORDER BY step DESC LIMIT 1",
                             (run_id,)).fetchone()
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    def export_metrics(self, run_id: str) -> None:
        """Write the run's metrics into its folder, so the folder alone describes the run."""
        data = {k: {"step": s, "value": v} for k, (s, v) in self.metrics(run_id).items()}
        atomic_write(self.run_dir(run_id) / "metrics.json", json.dumps(data, allow_nan=True).encode())

    def get(self, run_id: str) -> RunRecord:
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id!r} in {self.root}")
        return self.record(row)

    def list(self, status: Iterable[str] | None = None, group_id: str | None = None) -> list[RunRecord]:
        """Runs newest first. Active runs whose process has died are marked on the way (:meth:`reap`)."""
        self.reap()
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM runs ORDER BY created DESC").fetchall()
        records = [self.record(r) for r in rows]
        return [r for r in records
                if (status is None or r.status in status) and (group_id is None or r.group_id == group_id)]

    def reap(self) -> list[str]:
        """Mark runs whose process died without a word: 'interrupted' when they had started (their last
        train state resumes them), 'cancelled' when a foreground run's terminal ended while it queued."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, status, pid, pid_start FROM runs WHERE status IN ('queued', 'running',"
                              " 'stopping') AND pid IS NOT NULL").fetchall()
        reaped = []
        for run_id, status, pid, started in rows:
            if pid_alive(pid, started):
                continue
            if status == "queued":
                done = self.set_status(run_id, "cancelled", only_if=("queued",),
                                       error="its terminal ended before it had a slot")
            else:
                done = self.set_status(run_id, "interrupted", only_if=("running", "stopping"),
                                       error="the worker process ended without a result (killed, or the machine "
                                             "restarted); resume continues from its last checkpoint")
            if done:
                reaped.append(run_id)
        return reaped

    def delete(self, run_id: str) -> None:
        record = self.get(run_id)
        if record.status in ACTIVE:
            raise RuntimeError(f"run {run_id} is still {record.status}; stop or cancel it first")
        with closing(self._connect()) as db:
            db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        run_dir = self.run_dir(run_id)
        for f in sorted(run_dir.glob("**/*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        run_dir.rmdir()

    # ------------------------------------------------------------------ settings shared by every process

    def setting(self, key: str, default: Any = None) -> Any:
        with closing(self._connect()) as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        self._write("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)))

    @staticmethod
    def record(row: sqlite3.Row) -> RunRecord:
        """A :class:`RunRecord` from a ``SELECT * FROM runs`` row (of this store or of a :meth:`transaction`)."""
        d = dict(row)
        return RunRecord(**{**d, "config": json.loads(d["config"]), "summary": json.loads(d["summary"]),
                            "stop_requested": bool(d["stop_requested"]), "reference": bool(d["reference"])})
