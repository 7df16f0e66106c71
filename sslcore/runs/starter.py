"""The starter pack: a reference run of every registered method on ``shapes``, shipped in ``assets/starter``.

A fresh install shows them in Runs, Compare and Embeddings (marked as reference), so a class can
compare ten methods before anyone has trained. Each was trained by :func:`execute` with the
method's default run on shapes (its defaults and :data:`~sslcore.runs.config.DEFAULT_RUNS`);
the pack keeps its metrics and a small checkpoint: the backbone in float16 (MAE: encoder and decoder,
so the MAE page can reconstruct with it). ``sslcore starter-pack`` (``make starter-pack``) rebuilds it;
tests/test_starter.py fails when a method's defaults no longer match the pack's recipe.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from sslcore.checkpoint import load_checkpoint, save_checkpoint
from sslcore.export import train_command
from sslcore.methods import METHODS
from sslcore.models.load import assets_dir
from sslcore.paths import atomic_write
from sslcore.runs.config import RunConfig, default_backbone, default_run
from sslcore.runs.execute import CHECKPOINT, execute
from sslcore.runs.store import RunStore
from sslcore.runs.timeline import PARTIAL_KEY

PACK_FORMAT = "sslcore-starter-v1"
PREFIX = "ref-shapes-"
MAX_POINTS = 400  # per-step curves are thinned to about this many points; kNN checks are all kept


def pack_dir() -> Path:
    return assets_dir() / "starter"


def pack_config(method: str) -> RunConfig:
    """``method``'s reference run: its default run on ``shapes`` (:data:`~sslcore.runs.config.DEFAULT_RUNS`)."""
    run = default_run(method, "shapes")
    return RunConfig(method=method, dataset="shapes", backbone=default_backbone(method), image_size=run.image_size,
                     batch_size=run.batch_size, steps=run.steps, max_seconds=run.max_seconds).with_dataset_defaults()


def kept_prefix(method: str) -> str:
    """What a reference checkpoint keeps: the backbone, or everything of an MAE (its page reconstructs)."""
    return "" if method == "mae" else "backbone."


def _thin(metrics: dict[str, tuple[list[int], list[float]]]) -> dict[str, dict[str, list]]:
    out = {}
    for name, (steps, values) in metrics.items():
        every = 1 if name.startswith("knn") or len(steps) <= MAX_POINTS else -(-len(steps) // MAX_POINTS)
        keep = [i for i in range(len(steps)) if i % every == 0 or i == len(steps) - 1]
        out[name] = {"step": [steps[i] for i in keep], "value": [values[i] for i in keep]}
    return out


def describe_machine() -> str:
    """The CPU, its cores and torch (e.g. "AMD EPYC 9B14, 2 cores, torch 2.14.1"), for provenance and benchmarks."""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def build_starter_pack(out: Path | None = None, methods: list[str] | None = None,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the reference runs of ``methods`` (default: every method) and write the pack to ``out`` (default
    ``assets/starter``); the runs of other methods already in that pack stay in it, so a changed default
    retrains one method, not ten."""
    out = Path(out) if out is not None else pack_dir()
    methods = methods or list(METHODS)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {sorted(METHODS)}")
    others = [e for e in (read_pack(out) or {}).get("runs", [])
              if e["method"] not in methods and e["method"] in METHODS and (out / e["id"] / CHECKPOINT).is_file()]
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        trained = [_train_reference(method, store, out, log) for method in methods]
    return write_manifest(out, others + trained)


def _train_reference(method: str, store: RunStore, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Train ``method``'s reference run in ``store``, keep it in ``out/<run id>``; its manifest entry."""
    cfg = pack_config(method)
    run_id = store.create(asdict(cfg), run_id=f"{PREFIX}{method}")
    log(f"{run_id}: {train_command(cfg)}")
    summary = execute(cfg, store, run_id, log=log)
    target = out / run_id
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    state, meta = load_checkpoint(store.run_dir(run_id) / CHECKPOINT)
    prefix = kept_prefix(method)
    provenance = {"command": train_command(cfg), "machine": describe_machine(), "commit": _commit(),
                  "built": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    summary = {**summary, "run_dir": "", "provenance": provenance}
    save_checkpoint(target / CHECKPOINT, {k: v for k, v in state.items() if k.startswith(prefix)},
                    {**meta, "summary": summary, **({PARTIAL_KEY: [prefix]} if prefix else {})}, dtype=torch.float16)
    metrics = _thin(store.metrics(run_id))
    clock = store.step_seconds(run_id)
    kept_steps = sorted({s for series in metrics.values() for s in series["step"]})
    for name, data in (("config.json", asdict(cfg)), ("summary.json", summary), ("metrics.json", metrics),
                       ("seconds.json", {str(s): clock[s] for s in kept_steps if s in clock})):
        atomic_write(target / name, json.dumps(data, indent=1, allow_nan=True).encode())
    return manifest_entry(run_id, summary)


def manifest_entry(run_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    """A reference run's line in ``pack.json``, from its summary."""
    return {"id": run_id, "method": summary["method"], "steps": summary.get("steps"), "seconds": summary.get("seconds"),
            "knn_top1": summary.get("knn_top1"), "knn_top1_random_init": summary.get("knn_top1_random_init"),
            "command": summary["provenance"]["command"]}


def write_manifest(out: Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """``out/pack.json`` for the runs of ``entries`` (in the registry's order); its version hashes their
    checkpoints and summaries, so stores reinstall the pack whenever a run in it changes."""
    order = list(METHODS)
    entries = sorted(entries, key=lambda e: order.index(e["method"]))
    digest = hashlib.sha256()
    for entry in entries:
        digest.update((out / entry["id"] / CHECKPOINT).read_bytes())
        digest.update((out / entry["id"] / "summary.json").read_bytes())
    pack = {"format": PACK_FORMAT, "version": digest.hexdigest()[:16], "built": time.time(),
            "machine": describe_machine(), "runs": entries}
    atomic_write(out / "pack.json", json.dumps(pack, indent=1).encode())
    return pack


def read_pack(root: Path | None = None) -> dict[str, Any] | None:
    """The shipped pack's manifest, or None when there is none (or it is not a starter pack)."""
    path = (root or pack_dir()) / "pack.json"
    try:
        pack = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return pack if isinstance(pack, dict) and pack.get("format") == PACK_FORMAT else None


def install_starter_pack(store: RunStore, root: Path | None = None) -> list[str]:
    """Put the pack's runs into ``store`` (once per pack version; ``SSLCORE_STARTER_PACK=0`` skips it).

    Returns the ids installed by this call. Earlier reference runs of another version are replaced.
    """
    if os.environ.get("SSLCORE_STARTER_PACK", "1") in ("0", "false", "no"):
        return []
    root = root or pack_dir()
    pack = read_pack(root)
    if pack is None or store.setting("starter_pack_version") == pack["version"]:
        return []
    with store.transaction() as db:  # one process installs; another waits, then finds the version set
        stored = db.execute("SELECT value FROM settings WHERE key = 'starter_pack_version'").fetchone()
        if stored is not None and json.loads(stored[0]) == pack["version"]:
            return []
        old = [row[0] for row in db.execute("SELECT id FROM runs WHERE reference = 1")]
        for run_id in old:
            db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            shutil.rmtree(store.run_dir(run_id), ignore_errors=True)
        installed = []
        for entry in pack["runs"]:
            run_id, source = entry["id"], root / entry["id"]
            shutil.rmtree(store.run_dir(run_id), ignore_errors=True)  # left by an install that failed
            config = json.loads((source / "config.json").read_text())
            summary = {**json.loads((source / "summary.json").read_text()), "run_dir": str(store.run_dir(run_id))}
            store.create(config, run_id=run_id, reference=True, owner_name="reference", db=db)
            shutil.copytree(source, store.run_dir(run_id), dirs_exist_ok=True)
            db.execute("UPDATE runs SET status = 'finished', summary = ?, created = ?, started = ?, ended = ?"
                       " WHERE id = ?", (json.dumps(summary), pack["built"], pack["built"], pack["built"], run_id))
            metrics = json.loads((source / "metrics.json").read_text())
            seconds = {int(k): v for k, v in json.loads((source / "seconds.json").read_text()).items()}
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                           [(run_id, step, seconds.get(step, 0.0), name, value)
                            for name, series in metrics.items() for step, value in zip(series["step"], series["value"])])
            installed.append(run_id)
        db.execute("INSERT INTO settings (key, value) VALUES ('starter_pack_version', ?) ON CONFLICT(key) DO UPDATE"
                   " SET value = excluded.value", (json.dumps(pack["version"]),))
    return installed

