"""Jigsaw puzzles (Noroozi & Favaro 2016, "Unsupervised learning of visual representations by
solving jigsaw puzzles", arXiv:1603.09246)."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.augment import BatchViews, normalize, recipe
from sslcore.methods.base import Method, StepOutput
from sslcore.methods.pretext import (PretextBatch, accuracy, check_fraction, check_layout, classifier, color_drop,
                                     crop_boxes, encode_patches, grid_boxes)

TILES = 9


@dataclass(frozen=True)
class JigsawConfig:
    image_size: int = 32
    permutations: int = 64  # paper: 1000 (also ablated with fewer)
    permutation_seed: int = 0
    # Layout as fractions of the image side. Paper: 64 px tiles in 75 px cells of a 225 px crop,
    # i.e. tile 0.284, gap 0.049 + jitter up to 0.024 of the side; at 32 px that leaves gaps of
    # 1-2 px, so our tiles are smaller to keep edges apart.
    tile: float = 0.25
    gap: float = 0.08
    jitter: float = 0.04
    # Tiles go through the backbone at this fraction of image_size (16 px at 32); 1.0 (32 px tiles) cost
    # 3x the step and reached 13% task accuracy in 60 s on CIFAR-10 against 35%.
    tile_resize: float = 0.5
    color_drop_p: float = 0.0  # paper: per-tile colour-channel jitter and grayscale instead; see color_drop
    hidden_dim: int = 512  # paper: fc7 of 4096 after the concatenated per-tile fc6 (9 x 512)
    crop_scale: tuple[float, float] = (0.6, 1.0)  # paper: a random 225 px crop of a 256 px image

    def __post_init__(self) -> None:
        if not 2 <= self.permutations <= 10_000:
            raise ValueError(f"permutations must be in [2, 10000], got {self.permutations}")
        check_layout(self.tile, self.gap, self.jitter)
        check_fraction("tile_resize", self.tile_resize, 0.05, 1.0)
        check_fraction("color_drop_p", self.color_drop_p)
        if self.hidden_dim < 0:
            raise ValueError(f"hidden_dim must be >= 0, got {self.hidden_dim}")

    @property
    def tile_size(self) -> int:
        return max(4, round(self.tile_resize * self.image_size))


@functools.lru_cache(maxsize=1)
def _all_permutations() -> np.ndarray:
    """(9, 9!) uint8: one row per position, so a distance is 9 passes over contiguous memory."""
    return np.ascontiguousarray(np.array(list(itertools.permutations(range(TILES))), dtype=np.uint8).T)


@functools.lru_cache(maxsize=8)
def permutation_set(n: int, seed: int = 0) -> Tensor:
    """``n`` permutations of the 9 tiles, far apart in Hamming distance, the same for the same seed.

    Greedy max-min (farthest-point) selection over all 9! permutations from a seeded random
    start: each next permutation maximises its minimum Hamming distance to those already
    chosen, ties broken by the largest summed distance. The paper's Algorithm 1 maximises the
    summed (average) distance alone; the minimum is what keeps two classes from differing by a
    single swap, so it goes first here. Seed 0 gives minimum pairwise distances of 7 for
    n = 64, 6 for n = 100 and 5 for n = 1000 (averages 8.12, 8.08 and 8.01 of at most 9).

    Returns:
        (n, 9) int64; row ``p`` maps input position ``i`` to the grid cell ``p[i]`` shown there.
    """
    if not 2 <= n <= 10_000:
        raise ValueError(f"n must be in [2, 10000], got {n}")
    cols = _all_permutations()

    def distances(j: int) -> np.ndarray:  # (9!,) Hamming distances to permutation j
        d = np.zeros(cols.shape[1], dtype=np.int64)
        for row in cols:
            d += row != row[j]
        return d

    g = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(cols.shape[1], (1,), generator=g))]
    min_dist = distances(chosen[0])
    sum_dist = min_dist.copy()
    for _ in range(n - 1):
        score = min_dist * (TILES * n + 1) + sum_dist  # lexicographic: min first, then sum
        score[chosen] = -1
        j = int(score.argmax())  # first of equal maxima: deterministic
        chosen.append(j)
        dist = distances(j)
        np.minimum(min_dist, dist, out=min_dist)
        sum_dist += dist
    return torch.from_numpy(cols[:, chosen].T.astype(np.int64))


def hamming_distances(perms: Tensor) -> Tensor:
    """(n, 9) permutations -> (n, n) pairwise Hamming distances."""
    return (perms[:, None] != perms[None]).sum(-1)


def views(cfg: JigsawConfig) -> BatchViews:
    return BatchViews(recipe("none", cfg.image_size, crop_scale=tuple(cfg.crop_scale), crop_ratio=(3 / 4, 4 / 3),
                             hflip_p=0.5, normalize=False))


def make_task(images: Tensor, generator: torch.Generator, cfg: JigsawConfig = JigsawConfig()) -> PretextBatch:
    """Cut a 3x3 grid of tiles (with gaps and jitter) and shuffle it by a permutation of the set.

    Args:
        images: (B, 3, H, W) uint8 or [0, 1] float.

    Returns:
        inputs (B, 9, 3, t, t): position ``i`` holds the tile of cell ``perm[i]`` where
        ``perm = permutation_set(cfg.permutations, cfg.permutation_seed)[target]``;
        targets (B,): the permutation index; source (B, 3, S, S); boxes (B, 9, 4) of the cells
        in row-major order (before shuffling).
    """
    x = views(cfg)(images, generator)  # (B, 3, S, S) in [0, 1]
    b, dev = len(x), x.device
    boxes = grid_boxes(b, cfg.image_size, cfg.tile, cfg.gap, cfg.jitter, generator)
    tiles = color_drop(crop_boxes(x, boxes, cfg.tile_size), cfg.color_drop_p, generator)  # (B, 9, 3, t, t)
    perms = permutation_set(cfg.permutations, cfg.permutation_seed).to(dev)
    targets = torch.randint(len(perms), (b,), generator=generator, device=dev)
    shuffled = tiles[torch.arange(b, device=dev)[:, None], perms[targets]]
    return PretextBatch(inputs=normalize(shuffled), targets=targets, source=x, boxes=boxes)


class Jigsaw(Method):
    """Which permutation shuffled the tiles? A P-way classifier on the 9 tiles' concatenated features.

    Each tile goes alone through the same backbone (the paper's context-free network), so
    the backbone has to recognise object parts from a tile, and the head must reason about
    their arrangement. Shortcuts the design closes: matching edges across tiles (gaps,
    jitter), chromatic aberration and low-level statistics (optional colour dropping).
    """

    name = "jigsaw"
    Config = JigsawConfig

    def __init__(self, backbone: nn.Module, cfg: JigsawConfig = JigsawConfig()) -> None:
        super().__init__(backbone, cfg)
        self.head = classifier(TILES * backbone.num_features, cfg.hidden_dim, cfg.permutations)

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        task = make_task(images, generator, self.cfg)
        feats = encode_patches(self.backbone, task.inputs)  # (B, 9 * D)
        logits = self.head(feats).float()  # (B, P)
        loss = F.cross_entropy(logits, task.targets)
        embedding = feats.reshape(len(feats), TILES, -1).mean(1).detach().float()
        return StepOutput(loss=loss, embedding=embedding, logs={"task_acc": accuracy(logits, task.targets)})

    @property
    def train_magnification(self) -> float:
        return self.cfg.tile_size / (self.cfg.tile * self.cfg.image_size)  # the tile side as fed / as cut

    def view_pipelines(self) -> list[BatchViews]:
        return [views(self.cfg)]
