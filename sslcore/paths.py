"""Where the lab keeps its state: ``$SSLCORE_HOME`` (default ``~/.sslcore``)."""

from __future__ import annotations

import os
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
