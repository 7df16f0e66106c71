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
from sslcore.runs.timeline import PARTIAL_KEY, path_at


def load_run(run_dir: str | Path, device: torch.device | str = "cpu", step: int | None = None) -> tuple[Method, RunConfig]:
    """Rebuild a saved run's method from its folder, in eval mode: its final checkpoint, or the point
    of its timeline at ``step`` (:mod:`sslcore.runs.timeline`).

    A checkpoint that keeps only some parts (a timeline point, a starter-pack run: the backbone, or
    all of an MAE) loads those; the rest of the method (heads, targets, queues) is at its random init.
    """
    run_dir = Path(run_dir)
    state, meta = load_checkpoint(run_dir / CHECKPOINT if step is None else path_at(run_dir, step))
    if "config" not in meta:
        raise ValueError(f"{run_dir} has no run config in its checkpoint's JSON")
    cfg = RunConfig.from_dict(meta["config"])
    method = build_method(cfg, torch.device(device))
    prefixes = meta.get(PARTIAL_KEY)
    if prefixes:
        expected = method.state_dict()
        missing = [k for k in expected if k.startswith(tuple(prefixes)) and k not in state]
        if missing or any(k not in expected for k in state):
            raise CheckpointError(f"{run_dir.name}'s checkpoint does not fit its method ({len(missing)} missing keys)")
        method.load_state_dict(state, strict=False)
    else:
        method.load_state_dict(state)
    return method.eval(), cfg


def from_run(run_dir: str | Path, step: int | None = None) -> LoadedModel:
    """A run's model for the viewers (at ``step`` of its timeline, else final): DINO's teacher, MAE with its
    decoder, or another method's ViT backbone."""
    method, cfg = load_run(run_dir, step=step)
    kind, prefix = export_part(cfg.method)
    source = f"run {Path(run_dir).name} ({cfg.method}, {cfg.backbone}" + ("" if step is None else f", step {step}") + ")"
    arch = {"kind": kind, "method": cfg.method, "backbone": cfg.backbone, "image_size": cfg.image_size,
            "options": cfg.options}
    if kind == "mae":
        return LoadedModel(method.eval(), "mae", source, config=arch, image_size=cfg.image_size)
    module = method.get_submodule(prefix.rstrip("."))
    if not is_vit(module):
        raise CheckpointError(f"{source} has a {cfg.backbone} backbone; attention maps need a ViT "
                              "(vit_tiny, vit_small)")
    return LoadedModel(module.eval(), "vit", source, config=arch, image_size=cfg.image_size)
