import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from sslcore.augment import recipe
from sslcore.eval import (C_GRID, FALLBACK_C, FineTuneConfig, KNNEvaluator, KNNProtocol, choose_c, extract_features,
                          finetune, knn_accuracy, knn_predict, label_subset, linear_probe, nearest, parse_fractions,
                          supervised_reference)


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


def test_resized_evaluator_keeps_labels_k_and_t_and_says_it_resized():
    x = torch.full((4, 3, 8, 8), 200, dtype=torch.uint8)
    x[:, :, :4] = 10  # top half dark
    y = torch.tensor([0, 1, 0, 1])
    ev = KNNEvaluator(x, y, x[:2], y[:2], k=3, t=0.5).resized(16)
    assert ev.bank_images.shape == (4, 3, 16, 16) and ev.bank_images.dtype == torch.uint8
    assert ev.test_images.shape == (2, 3, 16, 16) and torch.equal(ev.bank_labels, y)
    assert ev.bank_images[0, 0, 0, 0] == 10 and ev.bank_images[0, 0, -1, -1] == 200  # the same picture, larger
    assert ev.protocol.describe() == "weighted kNN, k=3, T=0.5, bank=4, test=2, inputs resized 8 -> 16 px"
    assert ev.protocol.to_dict() == {"k": 3, "t": 0.5, "bank_size": 4, "test_size": 2, "image_size": 8,
                                     "input_size": 16}


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


# ---------------------------------------------------------------------------------------------
# kNN scores against a reference loop written from Wu et al. 2018 (sum of exp(s / T) per class)
# ---------------------------------------------------------------------------------------------
def brute_force_votes(bank, bank_labels, query, k, t, num_classes):
    votes = torch.zeros(len(query), num_classes, dtype=torch.float64)
    for qi, q in enumerate(query):
        sims = sorted(((float(q @ b), i) for i, b in enumerate(bank)), reverse=True)[:k]
        for s, i in sims:
            votes[qi, int(bank_labels[i])] += math.exp(s / t)
    return votes


@pytest.mark.parametrize("k,t,num_classes", [(1, 0.1, 3), (7, 0.07, 5), (40, 0.5, 4), (200, 1.0, 2)])
def test_knn_votes_equal_brute_force(k, t, num_classes):
    g = torch.Generator().manual_seed(k)
    bank = F.normalize(torch.randn(80, 16, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(0, num_classes, (80,), generator=g)
    query = F.normalize(torch.randn(30, 16, generator=g, dtype=torch.float64), dim=1)
    ours = knn_predict(bank, labels, query, num_classes, k, t, chunk=9)  # k=200 > bank: the whole bank votes
    assert torch.allclose(ours, brute_force_votes(bank, labels, query, k, t, num_classes), rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# label fractions
# ---------------------------------------------------------------------------------------------
def unbalanced_labels():
    return torch.cat([torch.full((n,), c) for c, n in enumerate([500, 230, 61, 9, 3])])[torch.randperm(803)]


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.37, 1.0])
def test_label_subset_keeps_class_proportions(fraction):
    labels = unbalanced_labels()
    idx = label_subset(labels, fraction, seed=3)
    counts, totals = torch.bincount(labels[idx], minlength=5), torch.bincount(labels)
    for c in range(5):
        assert abs(counts[c] - fraction * totals[c]) <= 1 or counts[c] == 1, (c, counts, totals)
        assert counts[c] >= 1
    assert len(set(idx.tolist())) == len(idx) and torch.equal(idx, idx.sort().values)


def test_label_subset_reproducible_by_seed_and_nested():
    labels = unbalanced_labels()
    a, b, c = label_subset(labels, 0.1, 0), label_subset(labels, 0.1, 0), label_subset(labels, 0.1, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    small, big = set(label_subset(labels, 0.01, 5).tolist()), set(label_subset(labels, 0.1, 5).tolist())
    assert small < big
    with pytest.raises(ValueError):
        label_subset(labels, 0.0, 0)


def test_parse_fractions():
    assert parse_fractions("0.01,0.1,1") == (0.01, 0.1, 1.0)
    for bad in ("", "0", "1.5", "a,b", "nan"):
        with pytest.raises(ValueError):
            parse_fractions(bad)


# ---------------------------------------------------------------------------------------------
# linear probes with a validated C
# ---------------------------------------------------------------------------------------------
def clusters(n, dim=20, classes=4, noise=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)
    y = torch.arange(n) % classes
    return F.normalize(centres[y] + noise * torch.randn(n, dim, generator=g), dim=1), y


def test_probe_at_full_labels_separates_and_noise_stays_at_chance():
    x, y = clusters(800, classes=4)
    score = linear_probe(x[:600], y[:600], x[600:], y[600:], fraction=1.0, seed=0)
    assert score.top1 > 97 and score.metric == "linear" and score.name == "linear 100%"
    p = score.protocol
    assert (p.train_size, p.test_size, p.fraction, p.folds) == (600, 200, 1.0, 3) and p.c in C_GRID
    assert "3-fold CV over 0.01/0.1/1/10" in p.describe() and "100% of labels" in p.describe()
    noise = torch.randint(0, 4, (800,), generator=torch.Generator().manual_seed(9))
    assert linear_probe(x[:600], noise[:600], x[600:], noise[600:]).top1 < 40  # chance: 25%


def test_probe_with_few_labels_uses_the_subset_and_falls_back_without_folds():
    x, y = clusters(400, classes=4, noise=1.0)
    few = linear_probe(x[:300], y[:300], x[300:], y[300:], fraction=0.01, seed=1)
    assert few.protocol.train_size == 4 and few.protocol.folds == 0 and few.protocol.c == FALLBACK_C
    assert few.protocol.c_grid == () and f"C={FALLBACK_C:g}," in few.protocol.describe()
    fixed = linear_probe(x[:300], y[:300], x[300:], y[300:], fraction=0.5, c=2.0)
    assert fixed.protocol.c == 2.0 and fixed.protocol.train_size == 152


def test_choose_c_prefers_strong_regularisation_when_labels_are_noise():
    # Pure noise: large C only fits noise, so cross-validation must not pick the largest C.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 50, generator=g), torch.randint(0, 3, (120,), generator=g)
    c, folds, warm = choose_c(x, y, grid=(1000.0, 0.001), folds=3, seed=0)
    assert folds == 3 and c == 0.001 and warm.weight.shape == (3, 50)


# ---------------------------------------------------------------------------------------------
# supervised reference and fine-tuning
# ---------------------------------------------------------------------------------------------
def brightness_images(n, seed=0):
    """Two classes any network can tell apart: dark and bright noise images."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    base = torch.where(y.bool(), 190, 40).view(-1, 1, 1, 1)
    return (base + torch.randint(-30, 30, (n, 3, 16, 16), generator=g)).clamp(0, 255).to(torch.uint8), y


def small_convnet():
    from sslcore.models import create_backbone

    torch.manual_seed(0)
    return create_backbone("convnet", 16)


def test_supervised_method_validates_and_is_not_an_ssl_method():
    from sslcore.methods import METHODS
    from sslcore.methods.supervised import Supervised, SupervisedConfig

    images, labels = brightness_images(8)
    views = recipe("mild", 16)
    assert "supervised" not in METHODS
    with pytest.raises(ValueError, match="labels must lie"):
        Supervised(small_convnet(), SupervisedConfig(16, num_classes=1), images, labels, views)
    with pytest.raises(ValueError, match="uint8"):
        Supervised(small_convnet(), SupervisedConfig(16, 2), images.float(), labels, views)
    method = Supervised(small_convnet(), SupervisedConfig(16, 2), images, labels, views)
    assert not any(k.startswith(("images", "labels")) for k in method.state_dict())  # data, not weights


def test_supervised_reference_learns_on_shapes_in_a_short_budget():
    from sslcore.data import make_shapes
    from sslcore.train import OptimConfig

    train, test = make_shapes(1000, 32, seed=0), make_shapes(300, 32, seed=1)

    def backbone():
        from sslcore.models import create_backbone

        torch.manual_seed(0)
        return create_backbone("convnet", 32)

    scores = supervised_reference(backbone, train.images, train.labels, test.images, test.labels, 1.0,
                                  recipe("mild", 32), steps=150, batch_size=64, optim=OptimConfig(lr=2e-3),
                                  backbone_name="convnet", knn=KNNProtocol(k=10, t=0.1))
    head, knn = scores
    assert head.metric == "supervised" and head.protocol.steps == 150 and head.protocol.train_size == 1000
    assert knn.metric == "knn" and knn.model == "supervised" and knn.protocol.bank_size == 1000
    # 10 classes (chance 10%); measured 38.7% (10 s on two cores; 60 steps gave 30%).
    assert head.top1 > 25, head.describe()


def test_finetune_learns_two_learning_rates_and_leaves_the_backbone_alone():
    images, labels = brightness_images(256)
    test_images, test_labels = brightness_images(64, seed=1)
    net = small_convnet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    score = finetune(net, images, labels, test_images, test_labels, fraction=0.5,
                     cfg=FineTuneConfig(epochs=10, batch_size=32, encoder_lr=1e-4, head_lr=3e-2), seed=0)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    p = score.protocol
    assert (p.train_size, p.batch_size, p.steps, p.encoder_lr, p.head_lr) == (128, 32, 40, 1e-4, 3e-2)
    # From random init, BatchNorm's running statistics need a few dozen steps to leave their defaults
    # (12 steps scored 50%); a pre-trained encoder starts with statistics of its data.
    assert score.top1 > 90 and score.metric == "finetune"
    with pytest.raises(ValueError):
        FineTuneConfig(epochs=0)


# ---------------------------------------------------------------------------------------------
# the plan, tables and JSON
# ---------------------------------------------------------------------------------------------
def test_evaluate_plan_with_references_and_table():
    from sslcore.eval import EvalPlan, Reference, evaluate, score_table, scores_json

    images, labels = brightness_images(120)
    test_images, test_labels = brightness_images(40, seed=1)
    with pytest.raises(ValueError):
        evaluate(small_convnet(), images, labels, test_images, test_labels, EvalPlan(random_init=True))
    with pytest.raises(ValueError):
        EvalPlan(supervised=True)
    ref = Reference(small_convnet, "convnet", recipe("mild", 16), steps=3, batch_size=32)
    seen = []
    plan = EvalPlan(knn=KNNProtocol(k=5, t=0.1), fractions=(0.1, 1.0), random_init=True, supervised=True,
                    finetune=FineTuneConfig(epochs=1, batch_size=32))
    scores = evaluate(small_convnet(), images, labels, test_images, test_labels, plan, ref, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert {(s.model, s.name) for s in scores} == {
        ("run", "knn"), ("run", "linear 10%"), ("run", "linear 100%"), ("random init", "knn"),
        ("random init", "linear 10%"), ("random init", "linear 100%"), ("supervised", "supervised 10%"),
        ("supervised", "supervised 100%"), ("supervised", "knn"), ("run", "finetune 10%"), ("run", "finetune 100%")}
    # The run here is itself an untrained convnet with the reference's seed: identical frozen scores.
    by = {(s.model, s.name): s.top1 for s in scores}
    assert by[("run", "knn")] == by[("random init", "knn")]
    table = score_table(scores)
    assert [r["score"] for r in table] == ["weighted kNN (k=5, T=0.1)", "linear probe, 10% labels",
                                           "linear probe, 100% labels"]
    assert table[1]["supervised %"] == f"{by[('supervised', 'supervised 10%')]:.1f}" and table[0]["fine-tuned %"] == ""
    js = scores_json(scores)
    assert js["run"]["linear 10%"]["protocol"]["fraction"] == 0.1 and "describe" in js["supervised"]["knn"]


def test_nearest_excludes_the_item_and_orders_by_similarity():
    x = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]]), dim=1)
    assert nearest(x, 0, k=3).tolist() == [1, 3, 2]
    assert len(nearest(x, 0, k=10)) == 4


# ---------------------------------------------------------------------------------------------
# CLI contract
# ---------------------------------------------------------------------------------------------
def cli(*args):
    out = subprocess.run([sys.executable, "-m", "sslcore", *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cli_eval_json_with_linear_and_label_fractions(tmp_path):
    run = cli("train", "--steps", "3", "--batch-size", "32", "--train-size", "256", "--knn-every", "1000",
              "--knn-bank", "400", "--knn-test", "100", "--out", str(tmp_path), "--json")
    common = ["eval", "--run", run["run_dir"], "--dataset", "shapes", "--knn-bank", "400", "--knn-test", "100", "--json"]
    result = cli(*common, "--knn", "--linear", "--label-fractions", "0.1,1", "--random-init", "--supervised",
                 "--finetune", "--finetune-epochs", "1")
    assert result["knn_protocol"] == {"k": 20, "t": 0.1, "bank_size": 400, "test_size": 100}
    scores = result["scores"]
    assert set(scores["run"]) == {"knn", "linear 10%", "linear 100%", "finetune 10%", "finetune 100%"}
    assert set(scores["random init"]) == {"knn", "linear 10%", "linear 100%"}
    assert set(scores["supervised"]) == {"supervised 10%", "supervised 100%", "knn"}
    assert scores["run"]["knn"]["top1"] == result["knn_top1"]
    probe = scores["run"]["linear 10%"]["protocol"]
    assert probe["train_size"] == 40 and probe["test_size"] == 100 and probe["fraction"] == 0.1
    assert scores["supervised"]["supervised 100%"]["protocol"]["steps"] == 3  # the run's budget
    assert len(result["table"]) == 3
    for model in scores.values():
        for s in model.values():
            assert 0 <= s["top1"] <= 100 and s["describe"]
    only_linear = cli(*common, "--linear")
    assert "knn_top1" not in only_linear and set(only_linear["scores"]["run"]) == {"linear 100%"}
    bad = subprocess.run([sys.executable, "-m", "sslcore", *common, "--linear", "--label-fractions", "2"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "(0, 1]" in bad.stderr
