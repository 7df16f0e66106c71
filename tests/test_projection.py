"""Projections: PCA against the known direction and scikit-learn, the exact kNN graph, UMAP and t-SNE."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslcore.viz.projection import UMAPConfig, knn_graph, pca, project, tsne, umap


def test_pca_recovers_a_known_dominant_direction():
    g = torch.Generator().manual_seed(0)
    u = F.normalize(torch.randn(30, generator=g), dim=0)
    a = 5 * torch.randn(500, generator=g)
    x = a[:, None] * u + 0.1 * torch.randn(500, 30, generator=g) + 3.0  # offset: PCA must centre
    y = pca(x)
    assert y.shape == (500, 2)
    corr = np.corrcoef(y[:, 0].numpy(), a.numpy())[0, 1]
    assert abs(corr) > 0.999
    assert y[:, 0].var() > 100 * y[:, 1].var()


def test_pca_matches_sklearn_up_to_sign_and_is_deterministic():
    from sklearn.decomposition import PCA

    x = torch.randn(200, 12, generator=torch.Generator().manual_seed(1)) * torch.linspace(3, 0.1, 12)
    ours = pca(x, dim=3)
    ref = torch.from_numpy(PCA(3).fit_transform(x.double().numpy())).float()
    signs = (ours * ref).sum(0).sign()
    assert torch.allclose(ours, ref * signs, atol=1e-4)
    assert torch.equal(pca(x, dim=3), ours)
    # The sign convention: each axis's largest loading is positive, so flipping the data flips the output.
    assert torch.allclose(pca(-x, dim=3), -ours, atol=1e-4)
    with pytest.raises(ValueError):
        pca(torch.randn(1, 5))


def test_knn_graph_is_the_exact_cosine_graph_with_self_first():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 8, generator=g)
    x[7] = x[3]  # a duplicate: both must still list themselves first
    idx, dist = knn_graph(x, 6, chunk=64)
    z = F.normalize(x, dim=1)
    sim = z @ z.T
    assert idx.shape == (300, 6) and idx.dtype == np.int32 and dist.dtype == np.float32
    assert (idx[:, 0] == np.arange(300)).all() and np.allclose(dist[:, 0], 0, atol=1e-6)
    for i in range(300):  # a loop over queries: sort every similarity, keep the 5 largest others
        others = sorted((float(sim[i, j]) for j in range(300) if j != i), reverse=True)[:5]
        assert np.allclose(dist[i, 1:], [1 - s for s in others], atol=1e-5)
        assert np.allclose(dist[i, 1:], 1 - sim[i, idx[i, 1:]].numpy(), atol=1e-5)
    assert 7 in idx[3] and 3 in idx[7]


def clusters(n=300, classes=3, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(classes, dim, generator=g)
    y = torch.arange(n) % classes
    return centres[y] + torch.randn(n, dim, generator=g), y


def neighbour_agreement(xy, y, k=5):
    d = torch.cdist(xy, xy)
    d.fill_diagonal_(float("inf"))
    nn_labels = y[d.topk(k, largest=False).indices]
    return (nn_labels == y[:, None]).float().mean().item()


@pytest.mark.slow  # the first UMAP call in a process compiles numba code: ~5 s cached, ~30 s cold
def test_umap_shape_determinism_and_cluster_separation():
    x, y = clusters()
    a = umap(x, seed=0)
    assert a.shape == (300, 2) and a.dtype == torch.float32
    assert torch.equal(umap(x, seed=0), a)
    assert not torch.equal(umap(x, seed=1), a)
    assert neighbour_agreement(a, y) > 0.95
    assert umap(x[:10], UMAPConfig(n_neighbors=30, n_epochs=20)).shape == (10, 2)  # neighbours capped at N-1
    with pytest.raises(ValueError):
        UMAPConfig(n_neighbors=1)


def test_tsne_and_dispatch():
    x, y = clusters(150)
    out = tsne(x, seed=0)
    assert out.shape == (150, 2) and neighbour_agreement(out, y) > 0.95
    assert torch.equal(project(x, "PCA"), pca(x))
    with pytest.raises(ValueError, match="unknown projection"):
        project(x, "LDA")


# ---------------------------------------------------------------------------------------------
# scatter figure and hover thumbnails
# ---------------------------------------------------------------------------------------------
def test_thumbnail_sprite_holds_every_image_at_its_tile():
    from sslcore.viz.embeddings import sprite_tile, thumbnail_sprite

    g = torch.Generator().manual_seed(0)
    colours = torch.randint(0, 256, (11, 3, 1, 1), generator=g)
    images = colours.expand(11, 3, 16, 16).to(torch.uint8).contiguous()  # flat colours survive JPEG well
    sprite = thumbnail_sprite(images, tile=32)
    assert (sprite.columns, sprite.tile, sprite.count) == (4, 32, 11)  # ceil(sqrt(11)) columns, 3 rows
    assert sprite.data_uri.startswith("data:image/jpeg;base64,")
    for i in range(11):
        tile = sprite_tile(sprite, i).float()
        assert tile.shape == (3, 32, 32)
        assert (tile[:, 4:-4, 4:-4] - colours[i].float()).abs().mean() < 8, i
    with pytest.raises(ValueError):
        thumbnail_sprite(images.float())


def test_scatter_figure_one_trace_per_class_with_indices():
    from sslcore.viz.embeddings import scatter_figure

    xy = torch.arange(12, dtype=torch.float32).view(6, 2)
    labels = torch.tensor([2, 0, 2, 1, 0, 2])
    fig = scatter_figure(xy, labels, ("a", "b", "c"), "PCA")
    assert [t.name for t in fig.data] == ["a", "b", "c"]
    c = fig.data[2]
    assert list(c.customdata) == [0, 2, 5] and list(c.x) == [0.0, 4.0, 10.0] and list(c.y) == [1.0, 5.0, 11.0]
    assert sorted(i for t in fig.data for i in t.customdata) == list(range(6))
    assert "customdata" in c.hovertemplate
