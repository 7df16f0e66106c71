"""The method registry: registry names are also the CLI's ``--method`` values."""

from __future__ import annotations

from dataclasses import fields, replace

from torch import nn

from sslcore.methods.base import Method, StepOutput
from sslcore.methods.byol import BYOL
from sslcore.methods.colorization import Colorization
from sslcore.methods.dino import DINO
from sslcore.methods.inpainting import Inpainting
from sslcore.methods.jigsaw import Jigsaw
from sslcore.methods.mae import MAE
from sslcore.methods.moco import MoCo
from sslcore.methods.relpos import RelPos
from sslcore.methods.rotation import Rotation
from sslcore.methods.simclr import SimCLR

METHODS: dict[str, type[Method]] = {
    SimCLR.name: SimCLR,
    MoCo.name: MoCo,
    BYOL.name: BYOL,
    DINO.name: DINO,
    Rotation.name: Rotation,
    Jigsaw.name: Jigsaw,
    RelPos.name: RelPos,
    Colorization.name: Colorization,
    Inpainting.name: Inpainting,
    MAE.name: MAE,
}


def create_method(name: str, backbone: nn.Module, image_size: int, **options: object) -> Method:
    """Build method ``name`` around ``backbone``; ``options`` override fields of its Config."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    cls = METHODS[name]
    known = {f.name for f in fields(cls.Config)}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"{name} has no option(s) {sorted(unknown)}; it has {sorted(known)}")
    cfg = replace(cls.Config(), **{"image_size": image_size, **options} if "image_size" in known else options)
    return cls(backbone, cfg)


__all__ = ["METHODS", "Method", "StepOutput", "create_method"]
