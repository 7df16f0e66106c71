"""The run store: one folder per run (config, metrics, checkpoints) indexed in SQLite.

SQLite in WAL mode lets one worker write metrics while any number of browser sessions read
them. Every call opens its own short-lived connection, so the store is safe to share between
threads and processes.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sslcore.paths import sslcore_home

ACTIVE = ("queued", "running", "stopping")
DONE = ("finished", "stopped", "failed", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, status TEXT NOT NULL,
    method TEXT NOT NULL, dataset TEXT NOT NULL, backbone TEXT NOT NULL, config TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}', error TEXT NOT NULL DEFAULT '', pid INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0, group_id TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, seconds REAL NOT NULL, name TEXT NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, step);
"""


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


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename: a reader sees all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A finished child that nobody reaped is a zombie: dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


class RunStore:
    """Runs under ``root`` (default ``$SSLCORE_HOME/runs``): ``root/runs.db`` and ``root/<run id>/``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else sslcore_home() / "runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "runs.db"
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def _write(self, sql: str, args: Iterable[Any] = ()) -> None:
        with closing(self._connect()) as db:
            db.execute(sql, tuple(args))

    def run_dir(self, run_id: str) -> Path:
        """The folder of ``run_id``; refuses ids that would escape the store."""
        path = (self.root / run_id).resolve()
        if path.parent != self.root.resolve() or not run_id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"invalid run id {run_id!r}")
        return path

    def create(self, config: dict[str, Any], group_id: str = "") -> str:
        """Register a queued run with its config; returns its id."""
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{config['method']}-{secrets.token_hex(3)}"
        run_dir = self.run_dir(run_id)
        run_dir.mkdir()
        atomic_write(run_dir / "config.json", json.dumps(config, indent=2).encode())
        now = time.time()
        self._write("INSERT INTO runs (id, created, updated, status, method, dataset, backbone, config, group_id)"
                    " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                    (run_id, now, now, config["method"], config["dataset"], config["backbone"],
                     json.dumps(config), group_id))
        return run_id

    def set_status(self, run_id: str, status: str, *, error: str | None = None, pid: int | None = None) -> None:
        if status not in ACTIVE + DONE:
            raise ValueError(f"unknown status {status!r}")
        sets, args = ["status = ?", "updated = ?"], [status, time.time()]
        if error is not None:
            sets.append("error = ?"), args.append(error)
        if pid is not None:
            sets.append("pid = ?"), args.append(pid)
        self._write(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", [*args, run_id])

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
        rows = [(run_id, step, seconds, k, float(v)) for k, v in values.items()]
        with closing(self._connect()) as db:
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", rows)

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

    def export_metrics(self, run_id: str) -> None:
        """Write the run's metrics into its folder, so the folder alone describes the run."""
        data = {k: {"step": s, "value": v} for k, (s, v) in self.metrics(run_id).items()}
        atomic_write(self.run_dir(run_id) / "metrics.json", json.dumps(data, allow_nan=True).encode())

    def get(self, run_id: str) -> RunRecord:
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id!r} in {self.root}")
        return self._record(row)

    def list(self, status: Iterable[str] | None = None, group_id: str | None = None) -> list[RunRecord]:
        """Runs newest first. Active runs whose worker has died are marked failed on the way."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM runs ORDER BY created DESC").fetchall()
        records = [self._reap(self._record(r)) for r in rows]
        return [r for r in records
                if (status is None or r.status in status) and (group_id is None or r.group_id == group_id)]

    def delete(self, run_id: str) -> None:
        record = self.get(run_id)
        if record.status in ACTIVE and pid_alive(record.pid):
            raise RuntimeError(f"run {run_id} is still {record.status}; stop it first")
        with closing(self._connect()) as db:
            db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        run_dir = self.run_dir(run_id)
        for f in sorted(run_dir.glob("**/*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        run_dir.rmdir()

    def _reap(self, record: RunRecord) -> RunRecord:
        if record.status in ACTIVE and record.pid and not pid_alive(record.pid):
            self.set_status(record.id, "failed", error=record.error or "the worker process ended without a result")
            return self.get(record.id)
        return record

    @staticmethod
    def _record(row: sqlite3.Row) -> RunRecord:
        d = dict(row)
        return RunRecord(**{**d, "config": json.loads(d["config"]), "summary": json.loads(d["summary"]),
                            "stop_requested": bool(d["stop_requested"])})
