"""2-D projections of embeddings: PCA (instant), UMAP (seconds), t-SNE (an option, slower).

UMAP here is umap-learn with three changes measured on this 2-core CPU (benchmarks/
embedding_latency.py): the neighbour graph is an exact cosine kNN from one torch matmul instead of
NN-descent (whose numba code also compiles for ~30 s on first use), the layout starts from PCA
instead of a spectral embedding (the eigensolver took 40 s for 5k clustered points), and the
layout runs 200 epochs (umap-learn's own choice above 10k points) instead of 500. umap-learn is
imported lazily: its first call in a process still compiles the layout code with numba.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

PROJECTIONS = ("PCA", "UMAP", "t-SNE")


def pca(x: Tensor, dim: int = 2) -> Tensor:
    """Project (N, D) onto its ``dim`` principal axes -> (N, dim), highest variance first.

    Exact (an eigendecomposition of the D x D covariance), so the result is deterministic; each
    axis's sign is fixed so that its largest-magnitude loading is positive.
    """
    if x.dim() != 2 or len(x) < 2:
        raise ValueError(f"need (N >= 2, D) features, got {tuple(x.shape)}")
    x = x.double()
    centred = x - x.mean(0)
    _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    axes = vectors[:, -dim:].flip(1)  # (D, dim)
    signs = axes.gather(0, axes.abs().argmax(0, keepdim=True)).sign()
    return (centred @ (axes * signs)).float()


@torch.no_grad()
def knn_graph(x: Tensor, k: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k-nearest-neighbour graph of (N, D) features, each point its own first neighbour.

    Returns ``(indices (N, k) int32, distances (N, k) float32)`` with distance ``1 - cos``, the form
    umap-learn's ``precomputed_knn`` takes.
    """
    z = F.normalize(x.float(), dim=1)
    sims, idx = [], []
    for start in range(0, len(z), chunk):
        s = z[start:start + chunk] @ z.T  # (c, N)
        rows = torch.arange(len(s))
        s[rows, start + rows] = 2.0  # above any cosine: the point itself comes first even among duplicates
        top = s.topk(k, dim=1)
        sims.append(top.values.clamp(max=1.0))
        idx.append(top.indices)
    return torch.cat(idx).int().numpy(), (1 - torch.cat(sims)).clamp_min(0).numpy()


@dataclass(frozen=True)
class UMAPConfig:
    """UMAP (McInnes et al. 2018, arXiv:1802.03426) settings; umap-learn's defaults beside ours."""

    n_neighbors: int = 15  # umap-learn: 15
    min_dist: float = 0.1  # umap-learn: 0.1
    n_epochs: int = 200  # umap-learn: 500 below 10k points, 200 above
    init: str = "pca"  # umap-learn: "spectral" (its eigensolver dominated the time here)

    def __post_init__(self) -> None:
        if self.n_neighbors < 2 or self.n_epochs < 1 or not 0 <= self.min_dist <= 1:
            raise ValueError(f"need n_neighbors >= 2, n_epochs >= 1, 0 <= min_dist <= 1, got {self}")


def umap(x: Tensor, cfg: UMAPConfig = UMAPConfig(), seed: int = 0) -> Tensor:
    """UMAP of (N, D) features with cosine neighbours -> (N, 2); the same seed gives the same layout."""
    import umap as umap_learn  # lazy: the import alone takes seconds and compiles numba code

    n_neighbors = min(cfg.n_neighbors, len(x) - 1)
    if n_neighbors < 2:
        raise ValueError(f"UMAP needs at least 3 points, got {len(x)}")
    graph = knn_graph(x, n_neighbors)
    reducer = umap_learn.UMAP(n_neighbors=n_neighbors, min_dist=cfg.min_dist, n_epochs=cfg.n_epochs, init=cfg.init,
                              metric="cosine", precomputed_knn=(*graph, None), random_state=seed, n_jobs=1)
    with warnings.catch_warnings():
        # A precomputed graph without its search index only forbids .transform(), which we never call.
        warnings.simplefilter("ignore")
        return torch.from_numpy(reducer.fit_transform(x.float().numpy())).float()


def tsne(x: Tensor, perplexity: float = 30.0, seed: int = 0) -> Tensor:
    """t-SNE (van der Maaten & Hinton 2008) of (N, D) features -> (N, 2), PCA-initialised, cosine."""
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, (len(x) - 1) / 3)
    out = TSNE(2, perplexity=perplexity, init="pca", metric="cosine", random_state=seed).fit_transform(x.float().numpy())
    return torch.from_numpy(out).float()


def project(x: Tensor, method: str, seed: int = 0) -> Tensor:
    """(N, D) -> (N, 2) by one of ``PROJECTIONS``."""
    if method == "PCA":
        return pca(x)
    if method == "UMAP":
        return umap(x, seed=seed)
    if method == "t-SNE":
        return tsne(x, seed=seed)
    raise ValueError(f"unknown projection {method!r}; choose from {PROJECTIONS}")
