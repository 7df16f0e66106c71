import pytest
import torch
import torch.nn.functional as F

from sslcore.eval import KNNEvaluator, extract_features, knn_accuracy, knn_predict


def brute_force_knn(bank, bank_labels, query, k, t, num_classes):
    preds = []
    for q in query:
        sims = torch.tensor([float(q @ b) for b in bank])
        order = sorted(range(len(bank)), key=lambda i: -sims[i])[:k]
        votes = [0.0] * num_classes
        for i in order:
            votes[int(bank_labels[i])] += float(torch.exp(sims[i] / t))
        preds.append(max(range(num_classes), key=lambda c: votes[c]))
    return torch.tensor(preds)


@pytest.mark.parametrize("k,t", [(1, 0.1), (5, 0.07), (20, 1.0)])
def test_knn_matches_brute_force(k, t):
    g = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(60, 8, generator=g), dim=1)
    labels = torch.randint(0, 4, (60,), generator=g)
    query = F.normalize(torch.randn(25, 8, generator=g), dim=1)
    ours = knn_predict(bank, labels, query, 4, k, t, chunk=7).argmax(1)
    assert torch.equal(ours, brute_force_knn(bank, labels, query, k, t, 4))


def test_knn_accuracy_on_separable_clusters():
    centres = F.normalize(torch.randn(3, 16, generator=torch.Generator().manual_seed(1)), dim=1)
    labels = torch.arange(3).repeat(20)
    feats = F.normalize(centres[labels] + 0.01 * torch.randn(60, 16), dim=1)
    assert knn_accuracy(feats[:30], labels[:30], feats[30:], labels[30:], k=5) == 1.0


def test_extract_features_restores_mode_and_normalises():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten())
    net.train()
    x = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    feats = extract_features(net, x, batch_size=3)
    assert feats.shape == (10, 4) and net.training
    assert torch.allclose(feats.norm(dim=1), torch.ones(10), atol=1e-5)
    # Eval mode: batch composition must not change a sample's features.
    assert torch.allclose(extract_features(net, x[:1]), feats[:1], atol=1e-5)


def test_evaluator_protocol():
    x = torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(12) % 3
    ev = KNNEvaluator(x, y, x, y, k=1, t=0.2)
    assert ev.protocol.describe() == "weighted kNN, k=1, T=0.2, bank=12, test=12"
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 6))
    # Querying the bank itself with k=1: each point is its own nearest neighbour.
    assert ev(net) == pytest.approx(1.0)


def test_linear_probe_separates_linear_classes_and_fails_on_noise():
    from sslcore.eval import linear_probe_accuracy

    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 10, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    acc, protocol = linear_probe_accuracy(x[:300], y[:300], x[300:], y[300:])
    assert acc > 0.95 and protocol.train_size == 300 and "L-BFGS" in protocol.describe()
    noise_labels = torch.randint(0, 2, (400,), generator=g)
    acc_noise, _ = linear_probe_accuracy(x[:300], noise_labels[:300], x[300:], noise_labels[300:])
    assert acc_noise < 0.65
