import math

import pytest
import torch
import torch.nn.functional as F

from sslcore.losses import (alignment_loss, byol_loss, centred_teacher, dino_cross_entropy, dino_loss, info_nce_queue,
                            nt_xent, sinkhorn_knopp)


def nt_xent_reference(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Eq. 1 of SimCLR written as the paper's loop over the 2N views."""
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    n = len(z0)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = torch.stack([z[i] @ z[k] / t for k in range(2 * n) if k != i])
        total += -(z[i] @ z[j] / t - torch.logsumexp(sims, 0))
    return total / (2 * n)


def test_identical_embeddings_give_log_of_negatives():
    # Every view equals every other: all 2B-1 logits tie, so the loss is log(2B - 1).
    z = torch.ones(8, 16)
    assert nt_xent(z, z, 0.5).item() == pytest.approx(math.log(15), abs=1e-5)


def test_orthogonal_pairs_closed_form():
    # Both views of pair 0 are e0, both of pair 1 are e1. For a view e0 the positive logit is 1/t
    # and its two negatives (the views e1) have logit 0.
    t = 0.5
    z0 = torch.eye(2)
    z1 = torch.eye(2)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert nt_xent(z0, z1, t).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("t", [0.07, 0.2, 1.0])
def test_matches_reference_loop(t):
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert nt_xent(z0, z1, t).item() == pytest.approx(nt_xent_reference(z0, z1, t).item(), rel=1e-5)


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_matches_lightly(t):
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(32, 128, generator=g), torch.randn(32, 128, generator=g)
    oracle = lightly_loss.NTXentLoss(temperature=t)(z0, z1).item()
    assert nt_xent(z0, z1, t).item() == pytest.approx(oracle, rel=1e-5)


def test_scale_invariant_and_gradients_flow():
    z0 = torch.randn(4, 8, requires_grad=True)
    z1 = torch.randn(4, 8)
    loss = nt_xent(z0, z1)
    assert loss.item() == pytest.approx(nt_xent(3 * z0, 0.5 * z1).item(), rel=1e-5)
    loss.backward()
    assert torch.isfinite(z0.grad).all() and z0.grad.abs().sum() > 0


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.ones(2, 3), torch.ones(2, 3), 0.0)
    with pytest.raises(ValueError, match="one shape"):
        nt_xent(torch.ones(2, 3), torch.ones(3, 3))


# ---------------------------------------------------------------------------------------------
# info_nce_queue (MoCo)
# ---------------------------------------------------------------------------------------------
def info_nce_queue_reference(q, k, queue, t):
    """MoCo's Algorithm 1 for one query at a time, in float64: positive logit first, then the queue."""
    q, k = F.normalize(q.double(), dim=1), F.normalize(k.double(), dim=1)
    total = 0.0
    for i in range(len(q)):
        pos = math.exp(float(q[i] @ k[i]) / t)
        negs = sum(math.exp(float(q[i] @ n) / t) for n in queue.double())
        total += -math.log(pos / (pos + negs))
    return total / len(q)


def test_info_nce_orthogonal_queue_closed_form():
    # Query = key = e0 (positive logit 1/t), two negatives e1, e2 (logit 0 each).
    t = 0.2
    q = k = torch.eye(3)[:1]
    queue = torch.eye(3)[1:]
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert info_nce_queue(q, k, queue, t).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_queue_of_copies_gives_log_k_plus_one():
    # Every queued key equals the positive: K + 1 tied logits.
    q = torch.randn(4, 8)
    queue = F.normalize(q[:1], dim=1).expand(9, -1)
    assert info_nce_queue(q[:1], q[:1], queue).item() == pytest.approx(math.log(10), rel=1e-6)


@pytest.mark.parametrize("t", [0.07, 0.2])
def test_info_nce_matches_reference_loop(t):
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    queue = F.normalize(torch.randn(11, 6, generator=g), dim=1)
    assert info_nce_queue(q, k, queue, t).item() == pytest.approx(info_nce_queue_reference(q, k, queue, t), rel=1e-5)


@pytest.mark.parametrize("t", [0.1, 0.2])
def test_info_nce_matches_lightly_memory_bank(t):
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    queue = F.normalize(torch.randn(64, 32, generator=g), dim=1)
    oracle = lightly_loss.NTXentLoss(temperature=t, memory_bank_size=(64, 32))
    # lightly 1.6 keeps the bank as (K, D) rows and hands the loss its contents from before this
    # batch is enqueued; a query without grad leaves the bank unchanged.
    oracle.memory_bank.bank.copy_(queue)
    expected = oracle(q, k).item()
    assert torch.equal(oracle.memory_bank.bank, queue)
    assert info_nce_queue(q, k, queue, t).item() == pytest.approx(expected, rel=1e-5)


def test_info_nce_gradient_reaches_queries_only():
    q = torch.randn(4, 8, requires_grad=True)
    k = torch.randn(4, 8, requires_grad=True)
    queue = F.normalize(torch.randn(6, 8), dim=1).requires_grad_()
    info_nce_queue(q, k, queue).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0 and torch.isfinite(q.grad).all()
    assert k.grad is None and queue.grad is None  # MoCo's stop-gradient on keys and queue


def test_info_nce_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        info_nce_queue(torch.ones(2, 3), torch.ones(2, 3), torch.ones(4, 3), 0.0)
    with pytest.raises(ValueError, match="queue"):
        info_nce_queue(torch.ones(2, 3), torch.ones(2, 3), torch.ones(4, 5))
    with pytest.raises(ValueError, match="queue"):
        info_nce_queue(torch.ones(2, 3), torch.ones(3, 3), torch.ones(4, 3))


# ---------------------------------------------------------------------------------------------
# byol_loss
# ---------------------------------------------------------------------------------------------
def test_byol_loss_analytic_values():
    e = torch.eye(4)
    assert byol_loss(e, 3 * e).item() == pytest.approx(0.0, abs=1e-6)  # aligned, any scale
    assert byol_loss(e, -e).item() == pytest.approx(4.0, abs=1e-6)  # opposite
    assert byol_loss(e, e.roll(1, dims=1)).item() == pytest.approx(2.0, abs=1e-6)  # orthogonal
    # Half the pairs aligned, half opposite: the batch mean of 0 and 4.
    assert byol_loss(e[:2], torch.stack([e[0], -e[1]])).item() == pytest.approx(2.0, abs=1e-6)


def test_byol_loss_matches_reference_loop_and_lightly():
    g = torch.Generator().manual_seed(4)
    p, z = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    reference = sum(float(((a / a.norm() - b / b.norm()) ** 2).sum()) for a, b in zip(p.double(), z.double())) / 7
    assert byol_loss(p, z).item() == pytest.approx(reference, rel=1e-5)
    lightly_loss = pytest.importorskip("lightly.loss")
    # lightly's NegativeCosineSimilarity is the batch mean of -cos: byol_loss = 2 + 2 * it.
    oracle = lightly_loss.NegativeCosineSimilarity()(p, z).item()
    assert byol_loss(p, z).item() == pytest.approx(2 + 2 * oracle, rel=1e-5)


def test_byol_loss_stops_gradient_on_target():
    p = torch.randn(3, 4, requires_grad=True)
    z = torch.randn(3, 4, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad.abs().sum() > 0 and z.grad is None
    with pytest.raises(ValueError, match="one shape"):
        byol_loss(torch.ones(2, 3), torch.ones(2, 4))


# ---------------------------------------------------------------------------------------------
# dino_loss
# ---------------------------------------------------------------------------------------------
def dino_loss_reference(student, teacher, center, ts, tt):
    """DINO's loss written out per sample and per prototype in float64 (Caron et al. 2021, Alg. 1)."""
    total, pairs = 0.0, 0
    for i, t in enumerate(teacher):
        for j, s in enumerate(student):
            if i == j:
                continue
            batch = 0.0
            for b in range(len(t)):
                tl = [(float(t[b, k]) - float(center[0, k])) / tt for k in range(t.shape[1])]
                sl = [float(s[b, k]) / ts for k in range(s.shape[1])]
                zt = sum(math.exp(v - max(tl)) for v in tl)
                log_zs = max(sl) + math.log(sum(math.exp(v - max(sl)) for v in sl))
                batch += -sum(math.exp(a - max(tl)) / zt * (c - log_zs) for a, c in zip(tl, sl))
            total += batch / len(t)
            pairs += 1
    return total / pairs


def test_dino_uniform_teacher_and_student_give_ln_k():
    k = 64
    zeros = [torch.zeros(4, k) for _ in range(4)]
    assert dino_loss(zeros, zeros[:2], torch.zeros(1, k)).item() == pytest.approx(math.log(k), rel=1e-6)


def test_dino_centre_equal_to_teacher_makes_teacher_uniform():
    # Centring by the teacher's own logits leaves a uniform teacher: H(u, P_s) = logsumexp(s/ts) - mean(s/ts).
    g = torch.Generator().manual_seed(5)
    t = torch.randn(1, 6, generator=g)
    s = torch.randn(1, 6, generator=g)
    expected = (torch.logsumexp(s / 0.1, 1) - (s / 0.1).mean(1)).item()
    assert dino_loss([s, s], [t, t.clone()], center=t, student_temp=0.1).item() == pytest.approx(expected, rel=1e-5)


def test_dino_sharp_teacher_is_cross_entropy_of_its_argmax():
    # A teacher logit 1 above the rest at tau_t = 0.001 is one-hot; the student's CE is then -log p_s[argmax].
    k, j = 5, 2
    t = torch.zeros(1, k)
    t[0, j] = 1.0
    s = torch.zeros(1, k)
    s[0, j] = 0.1
    expected = math.log(math.e + k - 1) - 1  # student logits / tau_s = (0, .., 1, .., 0)
    loss = dino_loss([s, s], [t, t], torch.zeros(1, k), student_temp=0.1, teacher_temp=0.001)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("crops", [2, 4])
def test_dino_matches_reference_loop(crops):
    g = torch.Generator().manual_seed(6)
    student = [torch.randn(3, 7, generator=g) for _ in range(crops)]
    teacher = [torch.randn(3, 7, generator=g) for _ in range(2)]
    center = 0.1 * torch.randn(1, 7, generator=g)
    ours = dino_loss(student, teacher, center, 0.1, 0.05).item()
    assert ours == pytest.approx(dino_loss_reference(student, teacher, center, 0.1, 0.05), rel=1e-5)


@pytest.mark.parametrize("crops,tt", [(2, 0.04), (6, 0.07)])
def test_dino_matches_lightly(crops, tt):
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(7)
    k = 32
    student = [torch.randn(8, k, generator=g) for _ in range(crops)]
    teacher = [torch.randn(8, k, generator=g) for _ in range(2)]
    center = 0.3 * torch.randn(1, k, generator=g)
    oracle = lightly_loss.DINOLoss(output_dim=k, warmup_teacher_temp=tt, teacher_temp=tt, student_temp=0.1)
    oracle.center.copy_(center.view(1, 1, k))  # lightly's centre is (1, 1, K)
    expected = oracle(teacher, student, teacher_temp=tt).item()  # lightly's argument order: teacher first
    assert dino_loss(student, teacher, center, 0.1, tt).item() == pytest.approx(expected, rel=1e-5)


def test_dino_gradient_reaches_student_only():
    student = [torch.randn(2, 5, requires_grad=True) for _ in range(3)]
    teacher = [torch.randn(2, 5, requires_grad=True) for _ in range(2)]
    center = torch.zeros(1, 5, requires_grad=True)
    dino_loss(student, teacher, center).backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
    assert all(t.grad is None for t in teacher) and center.grad is None


def test_dino_loss_is_the_cross_entropy_of_its_centred_teacher():
    g = torch.Generator().manual_seed(8)
    student = [torch.randn(4, 9, generator=g) for _ in range(3)]
    teacher = [torch.randn(4, 9, generator=g) for _ in range(2)]
    center = torch.randn(1, 9, generator=g)
    probs = [torch.softmax((t - center) / 0.05, dim=-1) for t in teacher]
    for t, p in zip(teacher, probs):
        torch.testing.assert_close(centred_teacher(t, center, 0.05), p)
        # Only logits relative to the centre matter: one shift of both leaves the targets alone.
        torch.testing.assert_close(centred_teacher(t + 3.0, center + 3.0, 0.05), p, rtol=0, atol=1e-6)
    assert dino_cross_entropy(student, probs, 0.1).item() == pytest.approx(
        dino_loss(student, teacher, center, 0.1, 0.05).item(), rel=1e-6)
    with pytest.raises(ValueError, match="temperatures"):
        centred_teacher(teacher[0], center, 0.0)


# ---------------------------------------------------------------------------------------------
# sinkhorn_knopp (DINOv2's centring, SwAV's equipartition)
# ---------------------------------------------------------------------------------------------
def test_sinkhorn_rows_are_distributions_and_prototypes_share_the_batch():
    logits = torch.randn(32, 8, generator=torch.Generator().manual_seed(9))
    q = sinkhorn_knopp(logits, 0.5, iters=3)
    torch.testing.assert_close(q.sum(1), torch.ones(32))  # the last rescaling is per sample: exact
    # Each prototype's share of the batch tends to 1/K as the iterations go on.
    spread = (q.sum(0) / 32 - 1 / 8).abs().max()
    converged = (sinkhorn_knopp(logits, 0.5, iters=200).sum(0) / 32 - 1 / 8).abs().max()
    assert converged < 1e-5 < spread < 0.05


def test_sinkhorn_of_equal_logits_is_uniform_and_ignores_a_constant_shift():
    assert torch.equal(sinkhorn_knopp(torch.zeros(4, 5), 0.04), torch.full((4, 5), 0.2))
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(10))
    torch.testing.assert_close(sinkhorn_knopp(logits + 3.0, 0.1), sinkhorn_knopp(logits, 0.1))


@pytest.mark.parametrize("iters", [1, 3])
def test_sinkhorn_matches_lightly(iters):
    swav = pytest.importorskip("lightly.loss.swav_loss")
    logits = 0.5 * torch.randn(16, 10, generator=torch.Generator().manual_seed(11))
    expected = swav.sinkhorn(logits.clone(), iterations=iters, epsilon=0.05)
    torch.testing.assert_close(sinkhorn_knopp(logits, 0.05, iters=iters), expected, rtol=1e-4, atol=1e-6)


def test_dino_rejects_bad_input():
    x = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="pair"):
        dino_loss([x], [x], torch.zeros(1, 4))  # one crop: nothing to distil across
    with pytest.raises(ValueError, match="pair"):
        dino_loss([x], [x, x], torch.zeros(1, 4))
    with pytest.raises(ValueError, match="temperatures"):
        dino_loss([x, x], [x, x], torch.zeros(1, 4), teacher_temp=0.0)
    with pytest.raises(ValueError, match="temperature > 0"):
        sinkhorn_knopp(x, 0.0)


def test_alignment_loss_is_the_positive_term_alone():
    z = torch.randn(8, 16)
    assert alignment_loss(z, 3 * z).item() == pytest.approx(0.0, abs=1e-6)  # same directions: 0
    assert alignment_loss(z, -z).item() == pytest.approx(4.0, abs=1e-5)
    a, b = torch.tensor([[2.0, 1.0]]), torch.tensor([[3.0, 2.0]])
    assert alignment_loss(a, b).item() == pytest.approx(2 - 2 * 8 / (5 ** 0.5 * 13 ** 0.5), abs=1e-6)
    # It equals BYOL's loss when the second argument is detached; here gradients reach both sides.
    z0, z1 = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    alignment_loss(z0, z1).backward()
    assert z0.grad.abs().sum() > 0 and z1.grad.abs().sum() > 0
    assert alignment_loss(z0, z1).item() == pytest.approx(byol_loss(z0, z1).item())
