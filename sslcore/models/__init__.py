"""Backbones, heads, EMA targets and ViT helpers."""

from sslcore.models.backbones import BACKBONES, DEFAULT_BACKBONE, create_backbone, is_vit
from sslcore.models.heads import mlp

__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "create_backbone", "is_vit", "mlp"]
