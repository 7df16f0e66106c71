"""Where the lab keeps its state (``$SSLCORE_HOME``, default ``~/.sslcore``), and writing files there safely."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def sslcore_home() -> Path:
    """The lab's home folder (runs, caches), created on demand."""
    home = Path(os.environ.get("SSLCORE_HOME") or Path.home() / ".sslcore").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def cache_dir() -> Path:
    path = sslcore_home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def inside(root: str | Path, path: str | Path) -> Path:
    """``path`` resolved, refusing anything that escapes ``root`` (symlinks and ``..`` included)."""
    root_r, path_r = Path(root).resolve(), (Path(root) / path).resolve()
    if path_r != root_r and root_r not in path_r.parents:
        raise ValueError(f"{path} is outside {root}")
    return path_r


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
