"""A saved run's model: rebuilt from its folder for evaluation, comparison and the viewers."""

from __future__ import annotations

from pathlib import Path

import torch

from sslcore.checkpoint import CheckpointError, load_checkpoint
from sslcore.methods.base import Method
from sslcore.models import is_vit
from sslcore.models.load import LoadedModel, export_part
from sslcore.runs.build import build_method
from sslcore.runs.config import RunConfig
from sslcore.runs.execute import CHECKPOINT

# A starter-pack checkpoint keeps only what the lab reads (the backbone, or all of an MAE): the
# rest of the method (heads, targets, queues) is rebuilt at its random init.
PARTIAL_KEY = "partial"


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Method, RunConfig]:
    """Rebuild a saved run's method (backbone and heads) from its folder, in eval mode."""
    run_dir = Path(run_dir)
    state, meta = load_checkpoint(run_dir / CHECKPOINT)
    if "config" not in meta:
        raise ValueError(f"{run_dir} has no run config in checkpoint.json")
    cfg = RunConfig.from_dict(meta["config"])
    method = build_method(cfg, torch.device(device))
    if meta.get(PARTIAL_KEY):
        expected = method.state_dict()
        missing = [k for k in expected if k.startswith(meta[PARTIAL_KEY]) and k not in state]
        if missing or any(k not in expected for k in state):
            raise CheckpointError(f"{run_dir.name}'s checkpoint does not fit its method ({len(missing)} missing keys)")
        method.load_state_dict(state, strict=False)
    else:
        method.load_state_dict(state)
    return method.eval(), cfg


def from_run(run_dir: str | Path) -> LoadedModel:
    """A finished run's model: DINO's teacher, MAE with its decoder, or another method's ViT backbone."""
    method, cfg = load_run(run_dir)
    kind, prefix = export_part(cfg.method)
    source = f"run {Path(run_dir).name} ({cfg.method}, {cfg.backbone})"
    arch = {"kind": kind, "method": cfg.method, "backbone": cfg.backbone, "image_size": cfg.image_size,
            "options": cfg.options}
    if kind == "mae":
        return LoadedModel(method.eval(), "mae", source, config=arch, image_size=cfg.image_size)
    module = method.get_submodule(prefix.rstrip("."))
    if not is_vit(module):
        raise CheckpointError(f"{source} has a {cfg.backbone} backbone; attention maps need a ViT "
                              "(vit_tiny, vit_small)")
    return LoadedModel(module.eval(), "vit", source, config=arch, image_size=cfg.image_size)
