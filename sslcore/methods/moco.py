"""MoCo v2: momentum contrast with a queue of negatives (He et al. 2020, arXiv:1911.05722;
Chen et al. 2020, arXiv:2003.04297)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.augment import BatchViews, color_jitter, recipe, view_size
from sslcore.losses import alignment_loss, info_nce_queue
from sslcore.methods.base import Method, StepOutput
from sslcore.models.ema import copy_frozen, ema_update
from sslcore.models.heads import float32_forward, mlp


@dataclass(frozen=True)
class MoCoConfig:
    image_size: int = 32
    queue_size: int = 4096  # paper: 65536 on ImageNet; 4096 in the authors' CIFAR-10 demo
    momentum: float = 0.99  # paper: 0.999; 0.99 in the CIFAR-10 demo, so the keys keep up in short runs
    temperature: float = 0.1  # paper (v2): 0.2; 0.1 in the CIFAR-10 demo
    hidden_dim: int = 512  # paper (v2): 2048
    out_dim: int = 128  # paper: 128
    # BatchNorm on every head layer, output included (MoCo v3's heads); paper (v2): none. See MoCo.
    head_batch_norm: bool = True
    crop_scale: tuple[float, float] = (0.2, 1.0)  # paper (v2): (0.2, 1.0)
    view_scale: float = 0.75  # paper: 1.0; smaller views buy more steps (see SimCLRConfig)
    rotation: float = 0.0  # paper: none (max degrees; for data with no upright pose)
    color_strength: float = 0.5  # paper (v2): 0.5, SimCLR's jitter (0.4, 0.4, 0.4, 0.1) with p 0.8
    symmetric: bool = False  # paper: off; on, both views serve as query and key (MoCo v3 style, 2x cost)
    # The collapse lab's switch: off, queries only align with their keys (losses.alignment_loss).
    negatives: bool = True

    def __post_init__(self) -> None:
        if self.queue_size < 1 or not 0 <= self.momentum <= 1 or self.temperature <= 0:
            raise ValueError(f"need queue_size >= 1, momentum in [0, 1] and temperature > 0, got {self.queue_size}, "
                             f"{self.momentum}, {self.temperature}")


class MoCo(Method):
    """Query encoder (backbone + MLP head), momentum key encoder, FIFO queue of keys, InfoNCE.

    Head BatchNorm: without it (v2's head) the projections of all images share a large common
    component, and in short AdamW runs the queries learn to move that component away from the
    stale keys in the queue instead of separating images (the mean negative logit turned
    negative, kNN stayed at random init); normalising the output over the batch removes it.
    Measured on ``shapes``, 400 steps: kNN +2.2 points without, +7.0 with.

    Shuffle-BN (multi-GPU key shuffling against BatchNorm leaks) is left out: a 4-way split and
    shuffled key BatchNorm made no measurable difference in short runs on one device.
    """

    name = "moco"
    Config = MoCoConfig

    def __init__(self, backbone: nn.Module, cfg: MoCoConfig = MoCoConfig()) -> None:
        super().__init__(backbone, cfg)
        bn = cfg.head_batch_norm
        self.projector = mlp((backbone.num_features, cfg.hidden_dim, cfg.out_dim), batch_norm=bn, last_bn=bn)
        self.key_backbone = copy_frozen(backbone)
        self.key_projector = copy_frozen(self.projector)
        self.momentum = cfg.momentum  # the momentum of the latest key-encoder update
        self.register_buffer("queue", torch.zeros(cfg.queue_size, cfg.out_dim))  # (K, D) normalised keys
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))  # next row to overwrite
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))  # rows holding real keys
        # MoCo v2's views are SimCLR's (no blur at 32 px, as SimCLR does on CIFAR-10).
        self.views = BatchViews(recipe("simclr", view_size(cfg.image_size, cfg.view_scale),
                                       crop_scale=tuple(cfg.crop_scale), rotation=cfg.rotation,
                                       **color_jitter(cfg.color_strength)))

    # The projection heads run in float32: under bf16 autocast, 300 steps on shapes gained +2.8
    # kNN points with a bf16 head and +8.6 with a float32 one (as many as all-fp32 training).
    def forward_query(self, x: Tensor) -> Tensor:
        """(N, 3, S, S) -> (N, out_dim) float32 queries (not normalised)."""
        return float32_forward(self.projector, self.backbone(x))

    @torch.no_grad()
    def forward_key(self, x: Tensor) -> Tensor:
        """(N, 3, S, S) -> (N, out_dim) L2-normalised float32 keys."""
        return F.normalize(float32_forward(self.key_projector, self.key_backbone(x)), dim=1)

    def contrast(self, q: Tensor, k: Tensor, negatives: Tensor) -> Tensor:
        """InfoNCE of queries (B, D) against their keys (B, D) and the (K', D) queued negatives."""
        if not self.cfg.negatives:
            return alignment_loss(q, k.detach())
        if len(negatives):
            return info_nce_queue(q, k, negatives, self.cfg.temperature)
        # Only the very first step meets an empty queue: rather than a loss of log(1) = 0 with no
        # gradient, contrast against the other keys of the batch (MoCo v3's in-batch form).
        logits = F.normalize(q, dim=1) @ k.T / self.cfg.temperature  # (B, B), positives on the diagonal
        return F.cross_entropy(logits, torch.arange(len(q), device=q.device))

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        b, cfg = len(images), self.cfg
        x0, x1 = self.views(images, generator), self.views(images, generator)
        # Until the queue has wrapped, only its filled rows are negatives: zeros would be negatives
        # at cosine 0 that add a constant e^0 to every softmax denominator.
        negatives = self.queue[:int(self.queue_filled)].clone()
        if cfg.symmetric:
            q = self.forward_query(torch.cat([x0, x1]))  # (2B, D): one pass, BatchNorm over 2B
            k = self.forward_key(torch.cat([x1, x0]))
            loss = (self.contrast(q[:b], k[:b], negatives) + self.contrast(q[b:], k[b:], negatives)) / 2
        else:
            q, k = self.forward_query(x0), self.forward_key(x1)
            loss = self.contrast(q, k, negatives)
        with torch.no_grad():
            qn = F.normalize(q[:b], dim=1)
            agreement = (qn * k[:b]).sum(1).mean().item()
            # mean_i,j q_i . n_j = (mean q) . (mean n): the mean negative logit without a (B, K) matmul.
            neg_mean = (qn.mean(0) * negatives.mean(0)).sum().item() / cfg.temperature if len(negatives) else 0.0
        self.dequeue_and_enqueue(k[:b])  # one key per image, as without symmetry
        logs = {"queue_fill": int(self.queue_filled) / cfg.queue_size, "key_query_agreement": agreement,
                "pos_logit": agreement / cfg.temperature, "neg_logit_mean": neg_mean}
        return StepOutput(loss=loss, embedding=q[:b].detach(), logs=logs)

    @torch.no_grad()
    def dequeue_and_enqueue(self, keys: Tensor) -> None:
        """Write (B, D) keys over the oldest rows, wrapping around the end of the queue."""
        size = len(self.queue)
        keys = keys[-size:]  # a batch larger than the queue keeps its newest keys
        idx = (int(self.queue_ptr) + torch.arange(len(keys), device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.fill_((int(self.queue_ptr) + len(keys)) % size)
        self.queue_filled.fill_(min(size, int(self.queue_filled) + len(keys)))

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(target, online) pairs that :meth:`on_step_end` moves by ``self.momentum``."""
        return [(self.key_backbone, self.backbone), (self.key_projector, self.projector)]

    def on_step_end(self, progress: float) -> None:
        for target, online in self.ema_pairs():
            ema_update(target, online, self.momentum)

    def view_pipelines(self) -> list[BatchViews]:
        return [self.views, self.views]
