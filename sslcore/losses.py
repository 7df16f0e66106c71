"""Self-supervised losses as pure functions, with shapes and paper references.

Reductions are explicit in each docstring so that values compare across implementations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(z0: Tensor, z1: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent of SimCLR (Chen et al. 2020, eq. 1) with in-batch negatives.

    Args:
        z0, z1: (B, D) projections of two views; row i of each is a positive pair.
        temperature: softmax temperature tau (SimCLR used 0.5 on CIFAR-10, 0.1 on ImageNet).

    Returns:
        Scalar: the cross-entropy of each of the 2B views against its positive among the other
        2B - 1 views, averaged over the 2B views (the reduction of lightly's ``NTXentLoss``).
        Identical embeddings with orthogonal pairs give ``log(2B - 1)``-like values; a perfect
        solution tends to 0.
    """
    if z0.shape != z1.shape or z0.dim() != 2:
        raise ValueError(f"expected two (B, D) tensors of one shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    b = len(z0)
    with _fp32(z0):
        z = F.normalize(torch.cat([z0, z1]).float(), dim=1)  # (2B, D)
        logits = z @ z.T / temperature  # (2B, 2B)
        logits.fill_diagonal_(float("-inf"))  # a view is not its own negative
        targets = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
        return F.cross_entropy(logits, targets)


def _fp32(x: Tensor) -> torch.autocast:
    # Under CPU/GPU autocast a matmul runs in bf16 even on float32 inputs; a cosine in bf16 has
    # ~3 significant digits, which a temperature of 0.04-0.1 magnifies into logit noise.
    return torch.autocast(x.device.type, enabled=False)


def info_nce_queue(q: Tensor, k: Tensor, queue: Tensor, temperature: float = 0.1) -> Tensor:
    """InfoNCE of MoCo (He et al. 2020, eq. 1 and Algorithm 1) against a queue of negative keys.

    Args:
        q: (B, D) queries from the online encoder; L2-normalised here.
        k: (B, D) positive keys from the momentum encoder; L2-normalised here and detached
            (MoCo's stop-gradient on keys).
        queue: (K, D) L2-normalised keys of earlier batches, the negatives (detached, used as is).
        temperature: tau (MoCo v2: 0.2 on ImageNet; the authors' CIFAR-10 demo: 0.1).

    Returns:
        Scalar: cross-entropy of the logits ``[q.k, q.queue_1, ..., q.queue_K] / tau`` with the
        positive at index 0, averaged over the B queries. Equals lightly's
        ``NTXentLoss(memory_bank_size=(K, D))`` when its bank holds ``queue``.
    """
    if q.shape != k.shape or q.dim() != 2 or queue.dim() != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f"expected q, k (B, D) and queue (K, D), got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(queue.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    with _fp32(q):
        q = F.normalize(q.float(), dim=1)
        k = F.normalize(k.detach().float(), dim=1)
        pos = (q * k).sum(1, keepdim=True)  # (B, 1)
        neg = q @ queue.detach().float().T  # (B, K)
        logits = torch.cat([pos, neg], dim=1) / temperature
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def alignment_loss(z0: Tensor, z1: Tensor) -> Tensor:
    """The positive pairs' term of a contrastive loss alone: ``2 - 2 cos(z0, z1)`` averaged over the batch.

    Wang & Isola 2020 call it alignment; with no negatives (their uniformity term) nothing keeps
    different images apart, and the cheapest minimum maps every image to one point. The collapse
    lab trains SimCLR and MoCo with this loss to show what their negatives prevent.

    Args:
        z0, z1: (B, D) embeddings of two views; row i of each is a positive pair. Gradients reach
            both (detach one to stop them, as MoCo's keys are).

    Returns:
        Scalar in [0, 4]; 0 when every pair points the same way.
    """
    if z0.shape != z1.shape or z0.dim() != 2:
        raise ValueError(f"expected two (B, D) tensors of one shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    with _fp32(z0):
        return (2 - 2 * F.cosine_similarity(z0.float(), z1.float(), dim=1)).mean()


def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """BYOL's normalised mean squared error (Grill et al. 2020, eq. 2).

    ``||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z)``.

    Args:
        p: (B, D) online predictions.
        z: (B, D) target projections; detached here (BYOL's stop-gradient).

    Returns:
        Scalar in [0, 4]: ``2 - 2 cos`` averaged over the batch. lightly's
        ``NegativeCosineSimilarity`` is ``-cos`` averaged over the batch, so
        ``byol_loss = 2 + 2 * NegativeCosineSimilarity``: the same gradient direction, twice the scale.
    """
    if p.shape != z.shape or p.dim() != 2:
        raise ValueError(f"expected two (B, D) tensors of one shape, got {tuple(p.shape)} and {tuple(z.shape)}")
    with _fp32(p):
        cos = F.cosine_similarity(p.float(), z.detach().float(), dim=1)  # (B,)
        return (2 - 2 * cos).mean()


def dino_loss(student_out: list[Tensor], teacher_out: list[Tensor], center: Tensor,
              student_temp: float = 0.1, teacher_temp: float = 0.04) -> Tensor:
    """DINO's cross-entropy between sharpened, centred teacher and student distributions.

    Caron et al. 2021, Algorithm 1 and eq. 3: ``H(P_t, P_s) = -sum P_t log P_s`` with
    ``P_t = softmax((t - c) / tau_t)`` (stop-gradient) and ``P_s = softmax(s / tau_s)``.

    Args:
        student_out: V tensors (B, K), one per crop; the first len(teacher_out) are the global
            crops in the teacher's order, the rest local crops.
        teacher_out: G tensors (B, K) of the teacher on the global crops.
        center: (1, K) running mean of teacher outputs.
        student_temp: tau_s (paper 0.1).
        teacher_temp: tau_t (paper: linear warm-up 0.04 -> 0.04-0.07).

    Returns:
        Scalar: the cross-entropy summed over K, averaged over the batch and over all G * V - G
        (teacher crop, student crop) pairs with different crop indices, as in the authors' code
        and lightly's ``DINOLoss``. A uniform teacher and student give ``ln K``.
    """
    return dino_cross_entropy(student_out, [centred_teacher(t, center, teacher_temp) for t in teacher_out],
                              student_temp)


@torch.no_grad()
def centred_teacher(teacher_logits: Tensor, center: Tensor, teacher_temp: float) -> Tensor:
    """(N, K) teacher logits -> (N, K) float32 ``softmax((t - c) / tau_t)``: DINO's centred, sharpened targets.

    ``center`` is the (1, K) running mean of teacher logits; a low ``teacher_temp`` sharpens.
    """
    if teacher_temp <= 0:
        raise ValueError(f"temperatures must be positive, got {teacher_temp}")
    with _fp32(center):
        return F.softmax((teacher_logits.float() - center.float()) / teacher_temp, dim=-1)


def dino_cross_entropy(student_out: list[Tensor], teacher_probs: list[Tensor], student_temp: float = 0.1) -> Tensor:
    """``H(P_t, P_s)`` of :func:`dino_loss` for teacher distributions made by any centring.

    Args:
        student_out: V tensors (B, K) of student logits, the global crops first (as in :func:`dino_loss`).
        teacher_probs: G tensors (B, K), rows summing to 1 (no gradient flows into them).
        student_temp: tau_s (paper 0.1).

    Returns:
        Scalar with :func:`dino_loss`'s reduction: mean over the batch and the G * V - G pairs.
    """
    if len(student_out) < len(teacher_probs) or len(student_out) * len(teacher_probs) - len(teacher_probs) < 1:
        raise ValueError(f"need at least one (teacher, student) pair of different crops, got {len(teacher_probs)} "
                         f"teacher and {len(student_out)} student crops")
    if student_temp <= 0:
        raise ValueError(f"temperatures must be positive, got {student_temp}")
    with _fp32(student_out[0]):
        student = [F.log_softmax(s.float() / student_temp, dim=-1) for s in student_out]
        total, pairs = 0.0, 0
        for i, pt in enumerate(teacher_probs):
            for j, log_ps in enumerate(student):
                if i != j:  # a crop never predicts itself
                    total = total + -(pt.detach().float() * log_ps).sum(-1).mean()
                    pairs += 1
        return total / pairs


@torch.no_grad()
def sinkhorn_knopp(logits: Tensor, temperature: float, iters: int = 3) -> Tensor:
    """(N, K) teacher logits -> (N, K) soft assignments that spread the batch evenly over K prototypes.

    SwAV's equipartition (Caron et al. 2020, sec. 3.1 and Algorithm 1, 3 iterations), used by
    DINOv2 (Oquab et al. 2023) in place of DINO's centring: the rows of ``exp(logits / T)`` are
    rescaled alternately so that every prototype gets 1/K of the batch's mass and every sample 1/N;
    the rows of the result sum to 1.
    """
    if temperature <= 0 or iters < 1:
        raise ValueError(f"need temperature > 0 and iters >= 1, got {temperature}, {iters}")
    with _fp32(logits):
        x = logits.float() / temperature
        q = torch.exp(x - x.max()).T  # (K, N); the global shift cancels in the normalisations
        n, k = q.shape[1], q.shape[0]
        q /= q.sum()
        for _ in range(iters):
            q /= q.sum(1, keepdim=True) * k  # each prototype: 1/K of the mass
            q /= q.sum(0, keepdim=True) * n  # each sample: 1/N
        return (q * n).T


def mae_loss(pred: Tensor, target: Tensor, mask: Tensor, norm_pix: bool = False, eps: float = 1e-6) -> Tensor:
    """MAE's reconstruction loss on the masked patches only (He et al. 2021, sec. 3, ``forward_loss``).

    Args:
        pred: (N, L, P) decoder predictions, one row of P = p*p*C pixel values per patch.
        target: (N, L, P) patchified target image (detached here).
        mask: (N, L), 0 visible, 1 masked; only masked patches count.
        norm_pix: regress each target patch normalised by its own mean and variance (the
            paper's better-representation variant, sec. 3 "Reconstruction target"); the
            variance is the unbiased one, as in the official code.
        eps: added to the variance before the square root (official: 1e-6).

    Returns:
        Scalar: the per-patch mean squared error over P values, averaged over masked patches
        (``sum(loss * mask) / sum(mask)``, the official reduction). NaN when nothing is masked.
    """
    if pred.shape != target.shape or pred.dim() != 3 or mask.shape != pred.shape[:2]:
        raise ValueError(f"expected pred, target (N, L, P) and mask (N, L), got {tuple(pred.shape)}, "
                         f"{tuple(target.shape)} and {tuple(mask.shape)}")
    with _fp32(pred):
        target = target.detach().float()
        if norm_pix:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + eps) ** 0.5
        loss = ((pred.float() - target) ** 2).mean(dim=-1)  # (N, L) per-patch MSE
        mask = mask.float()
        return (loss * mask).sum() / mask.sum()
