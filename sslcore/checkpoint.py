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

from sslcore.runs import atomic_write


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
