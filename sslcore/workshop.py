"""Workshop mode: one lab server for a class. Participants, the teacher's key, class presets, and
which server folders participants may train on.

Off by default (one person on their own machine owns every run). With ``SSLCORE_WORKSHOP=1`` every
browser session joins with a display name (and the workshop code, when one is set); a participant
may stop, cancel, resume or delete only their own runs, while everyone sees and compares every run.
The teacher unlocks their page with ``SSLCORE_TEACHER_KEY`` (or Streamlit's secrets), never a URL.

A participant is identified by a random token kept in a browser cookie; only its SHA-256 is stored,
so the database alone cannot impersonate anyone.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from sslcore.methods import METHODS
from sslcore.runs import ACTIVE, RunConfig, RunStore
from sslcore.runs.scheduler import Actor, cancel, class_started

_SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, joined REAL NOT NULL,
    last_seen REAL NOT NULL);
"""
MAX_NAME = 40
# Seconds between writes of a participant's last_seen. Every script run of every session looks its
# participant up: a write each time would contend with the workers' writes for the database's lock.
SEEN_EVERY = 60.0
_READY: set[Path] = set()  # databases this process has created the participants table in


class WorkshopError(ValueError):
    """A refusal a participant should read: wrong code, name taken, a folder or budget not allowed."""


@dataclass(frozen=True)
class WorkshopSettings:
    """What the server was started with (``make workshop`` sets them)."""

    enabled: bool = False
    code: str = ""  # SSLCORE_WORKSHOP_CODE: participants type it to join (empty: no code)
    teacher_key: str = ""  # SSLCORE_TEACHER_KEY, or ``teacher_key`` in .streamlit/secrets.toml
    data_roots: tuple[Path, ...] = ()  # SSLCORE_DATA_ROOTS (os.pathsep-separated): folders participants may use

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, secrets_: Mapping[str, Any] | None = None) -> "WorkshopSettings":
        roots = tuple(Path(p).expanduser().resolve() for p in env.get("SSLCORE_DATA_ROOTS", "").split(os.pathsep) if p)
        key = env.get("SSLCORE_TEACHER_KEY") or str((secrets_ or {}).get("teacher_key", ""))
        return cls(enabled=env.get("SSLCORE_WORKSHOP", "") not in ("", "0", "false", "no"),
                   code=env.get("SSLCORE_WORKSHOP_CODE", ""), teacher_key=key, data_roots=roots)

    def check_code(self, code: str) -> bool:
        return not self.code or hmac.compare_digest(code.strip().encode(), self.code.encode())

    def check_teacher_key(self, key: str) -> bool:
        return bool(self.teacher_key) and hmac.compare_digest(key.encode(), self.teacher_key.encode())

    def check_folder(self, folder: str) -> Path:
        """``folder`` resolved, if it lies under an allowed data root (symlinks and '..' resolved first)."""
        if not self.data_roots:
            raise WorkshopError("the teacher allows no server folders in this workshop: use shapes or digits")
        path = Path(folder).expanduser().resolve()
        if not any(path == root or root in path.parents for root in self.data_roots):
            raise WorkshopError(f"'{folder}' is outside the folders the teacher allows "
                                f"({', '.join(str(r) for r in self.data_roots)})")
        return path


# --------------------------------------------------------------------------- participants


@dataclass(frozen=True)
class Participant:
    id: str
    name: str
    joined: float
    last_seen: float = 0.0  # when a session of this participant last ran, to within SEEN_EVERY

    def actor(self, teacher: bool = False) -> Actor:
        return Actor(self.id, self.name, teacher)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@contextmanager
def _participants_db(store: RunStore) -> Iterator[sqlite3.Connection]:
    with store.connection() as db:
        if store.db_path not in _READY:
            db.executescript(_SCHEMA)
            _READY.add(store.db_path)
        yield db


def join(store: RunStore, settings: WorkshopSettings, name: str, code: str = "") -> tuple[Participant, str]:
    """A new participant named ``name``; returns it and the secret token that identifies its browser."""
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise WorkshopError(f"choose a display name of 1 to {MAX_NAME} printable characters")
    if not settings.check_code(code):
        raise WorkshopError("that is not this workshop's code: ask the teacher")
    with _participants_db(store) as db:
        taken = db.execute("SELECT 1 FROM participants WHERE lower(name) = lower(?) AND joined >= ?",
                           (name, class_started(store))).fetchone()
        if taken:
            raise WorkshopError(f"someone in this class is already called {name!r}: add an initial")
        token, now = secrets.token_urlsafe(24), time.time()
        participant = Participant(f"p-{secrets.token_hex(6)}", name, now, now)
        db.execute("INSERT INTO participants VALUES (?, ?, ?, ?, ?)", (participant.id, _hash(token), name, now, now))
    return participant, token


def from_token(store: RunStore, token: str | None) -> Participant | None:
    """The participant of this class whose browser holds ``token``, or None."""
    if not isinstance(token, str) or not token:
        return None
    with _participants_db(store) as db:
        row = db.execute("SELECT id, name, joined, last_seen FROM participants WHERE token_hash = ? AND joined >= ?",
                         (_hash(token), class_started(store))).fetchone()
        if row is None:
            return None
        found, now = Participant(*row), time.time()
        if now - found.last_seen >= SEEN_EVERY:
            db.execute("UPDATE participants SET last_seen = ? WHERE id = ?", (now, found.id))
            found = replace(found, last_seen=now)
    return found


def participants(store: RunStore) -> list[Participant]:
    """This class's participants, in the order they joined."""
    with _participants_db(store) as db:
        rows = db.execute("SELECT id, name, joined, last_seen FROM participants WHERE joined >= ? ORDER BY joined",
                          (class_started(store),)).fetchall()
    return [Participant(*r) for r in rows]


# --------------------------------------------------------------------------- the teacher's presets

KNOB_GROUPS = ("data", "model", "budget", "optimiser", "method options", "knn monitor")


@dataclass(frozen=True)
class ClassPresets:
    """What participants are offered, set on the teacher's page and shared by every session."""

    methods: tuple[str, ...] = tuple(METHODS)
    default_seconds: float = 60.0
    max_seconds: float = 300.0  # also ends a run with a steps budget
    max_queued: int = 2  # runs a participant may have waiting (not counting the one training)
    knobs: tuple[str, ...] = KNOB_GROUPS  # which groups of the Train form are shown

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS)) + sorted(set(self.knobs) - set(KNOB_GROUPS))
        if unknown or not self.methods:
            raise WorkshopError(f"presets need at least one method and known names, got unknown {unknown}")
        if not 0 < self.default_seconds <= self.max_seconds or self.max_queued < 1:
            raise WorkshopError("presets need 0 < default budget <= longest budget and at least one queued run")

    @classmethod
    def load(cls, store: RunStore) -> "ClassPresets":
        stored = store.setting("class_presets") or {}
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in known}
        try:
            return cls(**values)
        except (WorkshopError, TypeError):
            return cls()

    def save(self, store: RunStore) -> None:
        store.set_setting("class_presets", asdict(self))

    def apply(self, cfg: RunConfig) -> RunConfig:
        """``cfg`` within the presets: a refusal for a method not offered or a budget over the limit;
        a steps budget gets the time limit as well (the run ends at whichever comes first)."""
        if cfg.method not in self.methods:
            raise WorkshopError(f"{cfg.method} is not offered in this class: choose one of {', '.join(self.methods)}")
        if cfg.max_seconds is not None and cfg.max_seconds > self.max_seconds:
            raise WorkshopError(f"the teacher allows at most {self.max_seconds:g} s of training per run")
        return cfg if cfg.max_seconds is not None else replace(cfg, max_seconds=self.max_seconds)


# --------------------------------------------------------------------------- between classes


@dataclass
class ResetReport:
    cancelled: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def reset_class(store: RunStore, teacher: Actor, delete_runs: bool = False) -> ResetReport:
    """Start a new class: cancel every active run, forget the participants (their cookies stop
    working), resume the queue; with ``delete_runs``, delete the runs participants made (the
    reference runs and the machine user's own runs stay)."""
    if not teacher.teacher:
        raise PermissionError("only the teacher can reset the class")
    report = ResetReport()
    for r in store.list(status=ACTIVE):
        if not r.reference:
            cancel(store, r.id, teacher)
            report.cancelled.append(r.id)
    if delete_runs:
        deadline = time.time() + 15  # cancelled workers need a moment to leave their runs
        for r in store.list():
            if r.owner and not r.reference:
                while store.get(r.id).status in ACTIVE and time.time() < deadline:
                    time.sleep(0.2)
                store.delete(r.id)
                report.deleted.append(r.id)
    store.set_setting("class_started", time.time())
    store.set_setting("paused", False)
    return report

