"""``sslcore export``: a run's visualised weights as a small fp16 checkpoint the app can ship.

Writes three files side by side: ``NAME.safetensors`` (the weights, with the JSON config in the
safetensors header so the file alone is self-describing), ``NAME.json`` (config + provenance) and
``NAME.md`` (the provenance note a person reads: the exact ``sslcore train`` command, data, steps,
seconds and measured metrics).
"""

from __future__ import annotations

import io
import json
import shlex
import time
import zipfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save as save_safetensors_bytes

from sslcore.checkpoint import CheckpointError, load_checkpoint
from sslcore.models.load import MAX_SHIPPED_BYTES, SHIPPED_FORMAT, export_part
from sslcore.paths import atomic_write
from sslcore.runs import RunConfig

# RunConfig field -> `sslcore train` flag; fields the CLI cannot set must keep their defaults.
_FLAGS = {"method": "--method", "dataset": "--dataset", "data_dir": "--data-dir", "eval_dir": "--eval-dir",
          "backbone": "--backbone", "image_size": "--image-size", "batch_size": "--batch-size", "steps": "--steps",
          "max_seconds": "--max-seconds", "seed": "--seed", "train_size": "--train-size", "optimizer": "--optimizer",
          "lr": "--lr", "weight_decay": "--weight-decay", "precision": "--precision", "device": "--device",
          "knn_k": "--knn-k", "knn_t": "--knn-t", "knn_bank": "--knn-bank", "knn_test": "--knn-test",
          "knn_every_seconds": "--knn-every", "checkpoint_every_seconds": "--checkpoint-every"}


def train_command(cfg: RunConfig) -> str:
    """The ``sslcore train`` command line that reproduces ``cfg``.

    Raises:
        ValueError: ``cfg`` sets a field the CLI has no flag for (a run launched from the app with
            a setting the command line cannot express).
    """
    default = RunConfig()
    args = ["sslcore", "train"]
    for f in fields(RunConfig):
        value = getattr(cfg, f.name)
        if f.name == "options":
            args += [a for k, v in sorted(value.items()) for a in ("--option", f"{k}={json.dumps(v)}")]
        elif f.name == "knn_stages":
            args += [] if value else ["--no-knn-stages"]
        elif f.name in _FLAGS:
            # The budget, the model, the size and the batch are always spelled out (their CLI defaults follow
            # the method: sslcore.runs.config.DEFAULT_RUNS); other flags only where they differ.
            shown = f.name in ("method", "dataset", "backbone", "image_size", "batch_size", "steps", "max_seconds")
            if value is not None and (shown or value != getattr(default, f.name)):
                args += [_FLAGS[f.name], str(value)]
        elif value != getattr(default, f.name):
            raise ValueError(f"{f.name}={value!r} has no `sslcore train` flag")
    return shlex.join(args)


def export_state(state: Mapping[str, torch.Tensor], method: str) -> tuple[str, dict[str, torch.Tensor]]:
    """(kind, tensors) of a run's method state dict that the viewers need; see :func:`export_part`."""
    kind, prefix = export_part(method)
    part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not part:
        raise CheckpointError(f"the {method} checkpoint has no `{prefix}*` tensors to export")
    return kind, part


def export_run(run_dir: str | Path, out: str | Path, fp16: bool = True, metrics: Mapping[str, Any] | None = None,
               max_bytes: int | None = None, note: str = "") -> dict[str, Any]:
    """Export run ``run_dir`` to ``out`` (``NAME.safetensors``) with its config and provenance.

    Args:
        run_dir: a finished run's folder (``checkpoint.safetensors`` + sidecar).
        out: destination ``.safetensors`` path; ``.json`` and ``.md`` are written beside it.
        fp16: cast floating tensors to float16 (shipped checkpoints are).
        metrics: measured numbers to record besides the run's own (e.g. attention-in-box).
        max_bytes: refuse files larger than this (default ``MAX_SHIPPED_BYTES``, 20 MB).
        note: what a reader must know that the numbers do not say (e.g. "trained on a 2-core CPU").

    Returns:
        The JSON config written to ``NAME.json``.
    """
    run_dir, out = Path(run_dir), Path(out)
    max_bytes = MAX_SHIPPED_BYTES if max_bytes is None else max_bytes
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must end in .safetensors, got {out.name}")
    state, meta = load_checkpoint(run_dir / "checkpoint.safetensors")
    if "config" not in meta:
        raise CheckpointError(f"{run_dir} has no run config in checkpoint.json")
    cfg = RunConfig.from_dict(meta["config"])
    kind, part = export_state(state, cfg.method)
    dtype = torch.float16 if fp16 else torch.float32
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in part.items()}
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    if size > max_bytes:
        raise ValueError(f"{out.name} would be {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB "
                         f"({'use a smaller backbone' if fp16 else 'add --fp16'})")
    summary = meta.get("summary", {})
    try:
        command = train_command(cfg)
    except ValueError as e:  # launched from the app with a setting the CLI lacks: the config below is exact
        command = f"(no exact command line: {e})"
    run_metrics = {k: summary[k] for k in ("knn_top1", "knn_top1_random_init", "knn_protocol", "loss", "train_images",
                                           "images_per_second", "skipped_steps") if k in summary}
    config = {
        "format": SHIPPED_FORMAT, "kind": kind, "method": cfg.method, "backbone": cfg.backbone,
        "image_size": cfg.image_size, "options": cfg.options, "dtype": str(dtype).removeprefix("torch."),
        "weights": {"dino": "DINO teacher backbone (EMA of the student)", "mae": "MAE encoder and decoder"}.get(
            cfg.method, f"{cfg.method} backbone"),
        "provenance": {
            "command": command, "config": asdict(cfg), "method_config": summary.get("method_config"),
            "dataset": cfg.dataset, "data_dir": cfg.data_dir,
            "eval_dir": cfg.eval_dir,
            "steps": summary.get("steps"), "seconds": summary.get("seconds"), "device": summary.get("device"),
            "precision": summary.get("precision"), "run_id": run_dir.name, "note": note,
            "exported": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "metrics": {**run_metrics, **(metrics or {})}},
    }
    blob = save_safetensors_bytes(tensors, metadata={"format": "pt", "sslcore": json.dumps(config)})
    if len(blob) > max_bytes:
        raise ValueError(f"{out.name} would be {len(blob) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    atomic_write(out, blob)
    atomic_write(out.with_suffix(".json"), json.dumps(config, indent=2).encode())
    atomic_write(out.with_suffix(".md"), provenance_note(out.stem, config, len(blob)).encode())
    return config


def provenance_note(name: str, config: Mapping[str, Any], size: int) -> str:
    """The human-readable provenance of an exported checkpoint (Markdown)."""
    p = config["provenance"]
    lines = [f"# {name}", "", f"{config['weights']}: `{config['backbone']}` at {config['image_size']} px, "
             f"{config['dtype']}, {size / 2**20:.1f} MB.", "", "Trained with:", "", "```bash", p["command"], "```", "",
             f"- data: {p['dataset']}" + (f" from `{p['data_dir']}`" if p.get("data_dir") else ""),
             f"- steps: {p['steps']}, training seconds: {p['seconds']}, device: {p['device']} ({p['precision']})",
             f"- run: {p['run_id']}, exported {p['exported']}", "", *([p["note"], ""] if p.get("note") else []),
             "Measured:", ""]
    lines += [f"- {k}: {json.dumps(v)}" for k, v in p["metrics"].items()] or ["- (nothing measured)"]
    return "\n".join(lines) + "\n"


def run_archive(run_dir: str | Path) -> bytes:
    """A run folder's files (config, summary, metrics, checkpoints, preview) as a zip under ``<run id>/``.

    Checkpoints are stored, not deflated: float weights barely compress, and deflating them cost 0.6 s
    per 12 MB.
    """
    folder = Path(run_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                kind = zipfile.ZIP_STORED if path.suffix == ".safetensors" else zipfile.ZIP_DEFLATED
                z.write(path, f"{folder.name}/{path.name}", compress_type=kind)
    return buf.getvalue()
