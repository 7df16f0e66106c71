"""Checkpoints as safetensors plus a JSON sidecar; never pickle.

Files are written atomically, so a run killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from sslcore.paths import atomic_write
from sslcore.train import Snapshot, TrainState


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with a message saying why."""


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any],
                    dtype: torch.dtype | None = None) -> Path:
    """Save ``state_dict`` to ``path`` (.safetensors) and ``meta`` beside it (.json).

    ``dtype`` casts floating tensors (e.g. ``torch.float16`` for shipped checkpoints).
    """
    path = Path(path)
    tensors = {}
    for k, v in state_dict.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous().clone()  # clone: safetensors refuses tensors sharing storage
    atomic_write(path, save_safetensors_bytes(tensors, metadata={"format": "pt"}))
    atomic_write(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a safetensors checkpoint and its JSON sidecar (empty dict when there is none)."""
    path = Path(path)
    try:
        tensors = load_safetensors_bytes(path.read_bytes())
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path.name} is not a readable safetensors file: {e}") from e
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, meta


SNAPSHOT_FORMAT = "sslcore-train-state-v1"


def save_snapshot(path: str | Path, snapshot: Snapshot, model_state: dict[str, torch.Tensor]) -> Path:
    """Save a resumable train state to one safetensors file, atomically.

    Tensors: the method's state as ``model.<name>``, each optimiser tensor as ``optim.<param>.<name>``
    and the generator state as ``rng.generator``; the loop's counters and the optimiser's groups
    ride in the header as JSON. One file, so a kill mid-save leaves the previous state whole.
    """
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model_state.items()}
    extra: dict[str, dict[str, Any]] = {}
    for index, entries in snapshot.optimizer["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                extra.setdefault(str(index), {})[name] = value  # e.g. SGD's momentum buffer before step 1: None
    tensors["rng.generator"] = snapshot.generator.cpu().clone()
    state = {k: v for k, v in vars(snapshot.state).items() if k != "logs"}
    header = {"format": SNAPSHOT_FORMAT, "state": state, "param_groups": snapshot.optimizer["param_groups"],
              "optim_extra": extra}
    path = Path(path)
    atomic_write(path, save_safetensors_bytes(tensors, metadata={"sslcore": json.dumps(header)}))
    return path


def load_snapshot(path: str | Path) -> tuple[dict[str, torch.Tensor], Snapshot]:
    """(method state, :class:`Snapshot`) from :func:`save_snapshot`'s file, tensors in their saved dtypes."""
    path = Path(path)
    try:
        data = path.read_bytes()
        tensors = load_safetensors_bytes(data)
        header = json.loads(safetensors_metadata(data)["sslcore"])
    except (SafetensorError, OSError, ValueError, KeyError, OverflowError) as e:
        raise CheckpointError(f"{path.name} is not a readable train state: {e}") from e
    if header.get("format") != SNAPSHOT_FORMAT:
        raise CheckpointError(f"{path.name} has format {header.get('format')!r}, expected {SNAPSHOT_FORMAT}")
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entries in header["optim_extra"].items():
        state.setdefault(int(index), {}).update(entries)
    optimizer = {"state": state, "param_groups": header["param_groups"]}
    return model, Snapshot(TrainState(**header["state"]), optimizer, tensors["rng.generator"])


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The string metadata in a safetensors file's header."""
    header_len = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + header_len]).get("__metadata__") or {}
