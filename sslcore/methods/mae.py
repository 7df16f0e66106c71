"""MAE: masked autoencoders are scalable vision learners (He et al. 2021, arXiv:2111.06377)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from sslcore.augment import BatchViews, normalize, recipe
from sslcore.losses import mae_loss
from sslcore.methods.base import Method, StepOutput
from sslcore.models.backbones import is_vit
from sslcore.models.vit import MASK_STRATEGIES, ids_from_mask, make_mask, patchify, sincos_pos_embed


@dataclass(frozen=True)
class MAEConfig:
    image_size: int = 32
    mask_ratio: float = 0.75  # paper: 0.75
    mask_strategy: str = "random"  # paper: random; block and grid are ablated in Table 1f
    decoder_dim: int = 128  # paper: 512
    decoder_depth: int = 2  # paper: 8
    decoder_heads: int = 4  # paper: 16 (head width 32, as here)
    norm_pix_loss: bool = False  # paper: True (better features); off so that reconstructions are viewable
    crop_scale: tuple[float, float] = (0.2, 1.0)  # paper: (0.2, 1.0), random resized crop + flip only

    def __post_init__(self) -> None:
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.mask_strategy not in MASK_STRATEGIES:
            raise ValueError(f"mask_strategy must be one of {MASK_STRATEGIES}, got {self.mask_strategy!r}")
        if self.decoder_depth < 1 or self.decoder_heads < 1 or self.decoder_dim % 4 or \
                self.decoder_dim % self.decoder_heads:
            raise ValueError(f"need decoder_depth >= 1 and decoder_dim divisible by 4 and by decoder_heads, got "
                             f"depth {self.decoder_depth}, dim {self.decoder_dim}, heads {self.decoder_heads}")


@dataclass(frozen=True)
class MAEReconstruction:
    """One batch through encoder and decoder, in the space the decoder predicts.

    Attributes:
        images: (N, 3, H, W) the input in [0, 1].
        pred: (N, L, p*p*3) float32 predictions of every patch: ImageNet-normalised pixels, or
            per-patch normalised pixels when ``norm_pix`` (the model was trained with norm_pix_loss).
        target: (N, L, p*p*3) the patchified ImageNet-normalised input.
        mask: (N, L) 0 visible, 1 hidden.
        grid: (h, w) patches.
        patch: patch side in pixels.
        norm_pix: whether ``pred`` is per-patch normalised.
    """

    images: Tensor
    pred: Tensor
    target: Tensor
    mask: Tensor
    grid: tuple[int, int]
    patch: int
    norm_pix: bool


class MAE(Method):
    """Encode the visible patches with the backbone ViT, decode all patches, regress the hidden ones.

    The encoder is the timm ViT backbone itself (its patch embedding, position embedding, prefix
    tokens, blocks and final norm) run on visible tokens only, so ``backbone(x)`` on full images
    (kNN) uses exactly the trained weights. The light decoder (timm blocks) sees encoded visible
    tokens plus a shared mask token at every hidden position, with fixed 2-D sin-cos position
    embeddings as in the official code (any grid size, so reconstructions work at other image
    sizes). The pixel target is the ImageNet-normalised image the encoder sees, as in the
    official code (and the released checkpoints); :func:`sslcore.augment.denormalize` maps
    predictions back to [0, 1].
    """

    name = "mae"
    Config = MAEConfig

    def __init__(self, backbone: nn.Module, cfg: MAEConfig = MAEConfig()) -> None:
        super().__init__(backbone, cfg)
        if not is_vit(backbone):
            raise ValueError(f"MAE needs a ViT backbone (vit_tiny or vit_small), got {type(backbone).__name__}")
        if getattr(backbone, "pos_embed", None) is None:
            raise ValueError("MAE needs a ViT with absolute position embeddings (pos_embed)")
        ph, pw = backbone.patch_embed.patch_size
        if ph != pw or cfg.image_size % ph:
            raise ValueError(f"MAE needs square patches dividing the image size, got {ph}x{pw} at {cfg.image_size}px")
        self.patch = ph
        self.grid = (cfg.image_size // ph, cfg.image_size // ph)
        hidden = make_mask(cfg.mask_strategy, 1, self.grid, cfg.mask_ratio, torch.Generator().manual_seed(0)).sum()
        if not 0 < hidden < self.grid[0] * self.grid[1]:
            raise ValueError(f"{cfg.mask_strategy} masking at ratio {cfg.mask_ratio} hides {int(hidden)} of "
                             f"{self.grid[0] * self.grid[1]} patches; it must hide some and keep some")
        self.num_prefix = backbone.num_prefix_tokens
        width = backbone.num_features
        self.decoder_embed = nn.Linear(width, cfg.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.decoder_blocks = nn.Sequential(*[Block(cfg.decoder_dim, cfg.decoder_heads, 4.0, qkv_bias=True,
                                                    norm_layer=norm) for _ in range(cfg.decoder_depth)])
        self.decoder_norm = norm(cfg.decoder_dim)
        self.decoder_pred = nn.Linear(cfg.decoder_dim, self.patch ** 2 * 3)
        self._init_decoder()
        self.views = BatchViews(recipe("mild", cfg.image_size, crop_scale=tuple(cfg.crop_scale)))

    def _init_decoder(self) -> None:
        # The official initialisation; the encoder keeps timm's.
        nn.init.normal_(self.mask_token, std=0.02)
        for m in [self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred]:
            for mod in m.modules():
                if isinstance(mod, nn.Linear):
                    nn.init.xavier_uniform_(mod.weight)
                    nn.init.zeros_(mod.bias)
                elif isinstance(mod, nn.LayerNorm):
                    nn.init.ones_(mod.weight)
                    nn.init.zeros_(mod.bias)

    def patchify(self, imgs: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, L, p*p*3)."""
        return patchify(imgs, self.patch)

    def make_mask(self, n: int, grid: tuple[int, int], generator: torch.Generator) -> Tensor:
        """(n, L) training masks with the configured strategy and ratio, 0 keep, 1 remove."""
        return make_mask(self.cfg.mask_strategy, n, grid, self.cfg.mask_ratio, generator)

    def _encoder_pos_embed(self, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """The backbone's position embedding split into prefix (1, P or 0, D) and patch (1, h*w, D) parts."""
        vit = self.backbone
        prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens  # timm: pos_embed may cover the cls token
        pos = vit.pos_embed
        if tuple(grid) != tuple(vit.patch_embed.grid_size):  # dynamic_img_size: what timm's _pos_embed does
            pos = resample_abs_pos_embed(pos, new_size=list(grid), old_size=vit.patch_embed.grid_size,
                                         num_prefix_tokens=prefix)
        return pos[:, :prefix], pos[:, prefix:]

    def forward_encoder(self, x: Tensor, ids_keep: Tensor) -> Tensor:
        """Visible patches through the backbone ViT.

        Args:
            x: (N, 3, H, W) ImageNet-normalised images, H and W multiples of the patch.
            ids_keep: (N, L_keep) indices of the visible patches (:func:`ids_from_mask`).

        Returns:
            (N, P + L_keep, D) normed tokens, P = the backbone's prefix tokens (cls, registers).
        """
        vit = self.backbone
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        tokens = vit.patch_embed(x)
        tokens = tokens.flatten(1, 2) if tokens.dim() == 4 else tokens  # (N, L, D); NHWC with dynamic_img_size
        prefix_pos, patch_pos = self._encoder_pos_embed(grid)
        tokens = tokens + patch_pos
        # Drop the hidden patches before the blocks: the encoder's cost scales with L_keep.
        tokens = torch.gather(tokens, 1, ids_keep[..., None].expand(-1, -1, tokens.shape[-1]))  # (N, L_keep, D)
        prefix = [t.expand(len(x), -1, -1) for t in (vit.cls_token, vit.reg_token) if t is not None]
        if prefix:
            prefix = torch.cat(prefix, dim=1)
            tokens = torch.cat([prefix + prefix_pos if prefix_pos.shape[1] else prefix, tokens], dim=1)
        tokens = vit.norm_pre(vit.pos_drop(tokens))
        return vit.norm(vit.blocks(tokens))

    def forward_decoder(self, latent: Tensor, ids_restore: Tensor, grid: tuple[int, int]) -> Tensor:
        """Encoded visible tokens plus mask tokens -> pixel predictions.

        Args:
            latent: (N, P + L_keep, D) from :meth:`forward_encoder`.
            ids_restore: (N, L) from :func:`ids_from_mask`.
            grid: (h, w), h*w = L.

        Returns:
            (N, L, p*p*3) predictions of every patch.
        """
        x = self.decoder_embed(latent)  # (N, P + L_keep, Dd)
        n, length = ids_restore.shape
        p = self.num_prefix
        mask_tokens = self.mask_token.to(x.dtype).expand(n, length - (x.shape[1] - p), -1)
        patches = torch.cat([x[:, p:], mask_tokens], dim=1)  # visible first, then hidden
        patches = torch.gather(patches, 1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))  # (N, L, Dd)
        patches = patches + sincos_pos_embed(x.shape[-1], grid).to(patches)
        x = torch.cat([x[:, :p], patches], dim=1)  # prefix tokens keep a zero position, as officially
        x = self.decoder_norm(self.decoder_blocks(x))
        return self.decoder_pred(x)[:, p:]

    def forward_loss(self, x: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
        """Mean per-patch MSE over hidden patches; x: (N, 3, H, W) normalised, pred (N, L, p*p*3), mask (N, L)."""
        return mae_loss(pred, self.patchify(x), mask, norm_pix=self.cfg.norm_pix_loss)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """x: (N, 3, H, W) normalised, mask (N, L) -> predictions (N, L, p*p*3) and latent (N, P + L_keep, D)."""
        ids_keep, ids_restore = ids_from_mask(mask)
        latent = self.forward_encoder(x, ids_keep)
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        return self.forward_decoder(latent, ids_restore, grid), latent

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        x = self.views(images, generator)  # (B, 3, S, S) ImageNet-normalised
        mask = self.make_mask(len(x), self.grid, generator)  # (B, L)
        pred, latent = self(x, mask)
        loss = self.forward_loss(x, pred, mask)
        with torch.no_grad():
            # The visible patches are not trained on; their error shows how much the decoder copies.
            visible = mae_loss(pred, self.patchify(x), 1 - mask, norm_pix=self.cfg.norm_pix_loss)
            embedding = self.backbone.forward_head(latent, pre_logits=True)  # pooled as backbone(x) pools
        logs = {"loss_masked": loss.item(), "loss_visible": visible.item(), "mask_ratio": mask.mean().item()}
        return StepOutput(loss=loss, embedding=embedding.detach(), logs=logs)

    @torch.no_grad()
    def reconstruct(self, images: Tensor, mask: Tensor) -> MAEReconstruction:
        """Predict every patch of ``images`` (N, 3, H, W) in [0, 1] with ``mask`` (N, L) hidden.

        H and W must be multiples of the patch; other sizes than the training size need a backbone
        with ``dynamic_img_size`` (sslcore's ViTs have it).
        """
        images = images.float()
        x = normalize(images)
        mask = mask.to(x.device).float()
        pred, _ = self(x, mask)
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        return MAEReconstruction(images, pred.float(), self.patchify(x), mask, grid, self.patch,
                                 self.cfg.norm_pix_loss)

    def view_pipelines(self) -> list[BatchViews]:
        return [self.views]
