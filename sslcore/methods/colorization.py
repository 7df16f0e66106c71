"""Colorization (Zhang, Isola & Efros 2016, "Colorful image colorization", arXiv:1603.08511)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.augment import BatchViews, normalize, recipe
from sslcore.methods.base import Method, StepOutput
from sslcore.methods.pretext import PretextBatch, encode_decode, feature_grid
from sslcore.models.decoders import ConvDecoder

# sRGB (D65) <-> CIE XYZ <-> CIE Lab, the constants scikit-image's rgb2lab uses.
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_XYZ_TO_RGB = ((3.240481, -1.537151, -0.498536), (-0.969256, 1.875990, 0.041556), (0.055648, -0.204043, 1.057311))
_WHITE = (0.95047, 1.0, 1.08883)
_DELTA = 6 / 29


def _mat3(m: tuple[tuple[float, ...], ...], x: Tensor) -> Tensor:
    # Written out elementwise: under autocast a matmul would run in bf16 and cost ~1 unit of ab.
    return torch.stack([m[i][0] * x[:, 0] + m[i][1] * x[:, 1] + m[i][2] * x[:, 2] for i in range(3)], 1)


def _srgb_to_linear(c: Tensor) -> Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055).clamp_min(0) ** 2.4)


def _linear_to_srgb(c: Tensor) -> Tensor:
    c = c.clamp(0, 1)
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def _f(t: Tensor) -> Tensor:
    return torch.where(t > _DELTA ** 3, t.clamp_min(1e-12) ** (1 / 3), t / (3 * _DELTA ** 2) + 4 / 29)


def _f_inv(t: Tensor) -> Tensor:
    return torch.where(t > _DELTA, t ** 3, 3 * _DELTA ** 2 * (t - 4 / 29))


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """(B, 3, H, W) sRGB in [0, 1] -> (B, 3, H, W) CIE Lab: L in [0, 100], a and b within about +-110."""
    xyz = _mat3(_RGB_TO_XYZ, _srgb_to_linear(rgb))
    fx, fy, fz = (_f(xyz[:, i] / _WHITE[i]) for i in range(3))
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_lab`; colours outside the sRGB gamut are clipped to [0, 1]."""
    fy = (lab[:, 0] + 16) / 116
    fx, fz = fy + lab[:, 1] / 500, fy - lab[:, 2] / 200
    xyz = torch.stack([_WHITE[0] * _f_inv(fx), _WHITE[1] * _f_inv(fy), _WHITE[2] * _f_inv(fz)], 1)
    return _linear_to_srgb(_mat3(_XYZ_TO_RGB, xyz))


def gray_from_lightness(lightness: Tensor) -> Tensor:
    """(B, 1, H, W) L in [0, 100] -> (B, 3, H, W) sRGB gray of that lightness, three equal channels.

    A neutral colour has linear R = G = B = Y, so the gray is the gamma-encoded luminance.
    """
    return _linear_to_srgb(_WHITE[1] * _f_inv((lightness + 16) / 116)).expand(-1, 3, -1, -1)


@functools.lru_cache(maxsize=4)
def ab_bins(grid: float = 10.0) -> Tensor:
    """(Q, 2) centres of the ab grid cells that some sRGB colour falls in (the in-gamut bins).

    Cells are ``grid`` Lab units wide, centred on multiples of ``grid``; the gamut is sampled
    with a 64^3 RGB cube. The paper's grid of 10 keeps Q = 313 bins (sec. 2.1); the gamut of
    sRGB at every lightness gives Q = 261 with our centring.
    """
    v = torch.linspace(0, 1, 64)
    cube = torch.stack(torch.meshgrid(v, v, v, indexing="ij")).reshape(1, 3, -1, 1)
    ab = rgb_to_lab(cube)[0, 1:, :, 0].T  # (64^3, 2)
    return torch.unique(torch.round(ab / grid), dim=0) * grid


class SoftEncoder(nn.Module):
    """Soft-encode ab colours over the in-gamut bins: Gaussian weights on the nearest bins (paper sec. 2.1).

    Searching all Q bins for every pixel was a quarter of a CPU training step. The bins nearest to
    a colour lie among the ``neighbours + 11`` bins nearest to its rounded (integer) ab, which a
    table holds for all of [-128, 127]^2; exact distances then pick among those candidates. (The
    margin matters: inside a grid square the 4 corners come first, then 8 bins almost tied.)

    Args:
        grid: ab bin width (see :func:`ab_bins`).
        neighbours: bins per colour; paper: 5.
        sigma: Gaussian width in ab units; paper: 5.
    """

    def __init__(self, grid: float = 10.0, neighbours: int = 5, sigma: float = 5.0) -> None:
        super().__init__()
        bins = ab_bins(grid)
        if not 1 <= neighbours <= len(bins) - 11 or sigma <= 0:
            raise ValueError(f"need 1 <= neighbours <= {len(bins) - 11} and sigma > 0, got {neighbours}, {sigma}")
        self.neighbours, self.sigma = neighbours, sigma
        v = torch.arange(-128, 128, dtype=torch.float32)
        points = torch.stack(torch.meshgrid(v, v, indexing="ij"), -1).reshape(-1, 2)
        table = torch.cat([((chunk[:, None] - bins) ** 2).sum(-1).topk(neighbours + 11, largest=False).indices
                           for chunk in points.split(8192)])
        self.register_buffer("bins", bins.clone(), persistent=False)  # (Q, 2)
        self.register_buffer("candidates", table.reshape(256, 256, -1), persistent=False)  # (256, 256, K + 11)

    def forward(self, ab: Tensor) -> tuple[Tensor, Tensor]:
        """ab (N, 2) -> bin indices (N, K), nearest first, and their weights (N, K), summing to 1."""
        cell = (ab.round().long() + 128).clamp(0, 255)
        candidates = self.candidates[cell[:, 0], cell[:, 1]]  # (N, K + 11)
        d2 = ((ab[:, None] - self.bins[candidates]) ** 2).sum(-1)
        near_d2, pos = d2.topk(self.neighbours, dim=1, largest=False)  # sorted: nearest first
        return candidates.gather(1, pos), torch.softmax(-near_d2 / (2 * self.sigma ** 2), dim=1)


def rebalancing_weights(prior: Tensor, bins: Tensor, mix: float = 0.5, sigma: float = 5.0) -> Tensor:
    """Class-rebalancing weights per bin (paper eq. 3-4).

    The prior is smoothed with a Gaussian over ab, mixed with a uniform distribution by ``mix``
    (lambda), inverted, and normalised so that its expectation under the smoothed prior is 1:
    rare saturated colours then weigh as much as the abundant grays and browns.

    Args:
        prior: (Q,) empirical distribution of the target bins.
        bins: (Q, 2) bin centres.

    Returns:
        (Q,) weights.
    """
    kernel = torch.exp(-((bins[:, None] - bins[None]) ** 2).sum(-1) / (2 * sigma ** 2))  # (Q, Q)
    smooth = kernel @ prior
    smooth = smooth / smooth.sum()
    w = 1 / ((1 - mix) * smooth + mix / len(prior))
    return w / (smooth * w).sum()


@dataclass(frozen=True)
class ColorizationConfig:
    image_size: int = 32
    # Paper: "classification" over ab bins; "regression" (L2 on ab) is its baseline. In 60 s on CIFAR-10
    # (convnet, batch 128; random-init kNN 32.1%) classification kept kNN at 31.1%, regression fell to 25.3%.
    loss: str = "classification"
    grid: float = 10.0  # paper: 10 (ab bin width)
    rebalance: float = 0.5  # paper: lambda = 0.5; 1 turns rebalancing off (uniform mix)
    prior_momentum: float = 0.99  # paper: a fixed prior from all of ImageNet; ours is a running estimate
    annealed_t: float = 0.38  # paper: 0.38 (annealed-mean decoding temperature)
    downsample: int = 2  # paper: 4 (ab predicted at 56 px for a 224 px input)
    decoder_width: int = 128
    crop_scale: tuple[float, float] = (0.6, 1.0)  # paper: random crops and flips

    def __post_init__(self) -> None:
        if self.loss not in ("classification", "regression"):
            raise ValueError(f"loss must be 'classification' or 'regression', got {self.loss!r}")
        if not 0 <= self.rebalance <= 1 or not 0 <= self.prior_momentum < 1 or self.annealed_t <= 0:
            raise ValueError(f"need rebalance in [0, 1], prior_momentum in [0, 1) and annealed_t > 0, got "
                             f"{self.rebalance}, {self.prior_momentum}, {self.annealed_t}")
        if self.grid <= 0 or self.downsample < 1 or self.image_size % self.downsample:
            raise ValueError(f"need grid > 0 and a downsample >= 1 dividing image_size {self.image_size}, "
                             f"got grid={self.grid}, downsample={self.downsample}")

    @property
    def target_size(self) -> int:
        return self.image_size // self.downsample


def views(cfg: ColorizationConfig) -> BatchViews:
    return BatchViews(recipe("none", cfg.image_size, crop_scale=tuple(cfg.crop_scale), crop_ratio=(3 / 4, 4 / 3),
                             hflip_p=0.5, normalize=False))


def make_task(images: Tensor, generator: torch.Generator,
              cfg: ColorizationConfig = ColorizationConfig()) -> PretextBatch:
    """The lightness as a gray image in, the colour (ab of CIE Lab) out.

    Args:
        images: (B, 3, H, W) uint8 or [0, 1] float.

    Returns:
        inputs (B, 3, S, S): the L channel as a 3-channel gray image, normalised;
        targets (B, 2, s, s): the ab channels averaged down to ``cfg.target_size``;
        source (B, 3, S, S).
    """
    x = views(cfg)(images, generator)  # (B, 3, S, S) in [0, 1]
    with torch.autocast(x.device.type, enabled=False):
        lab = rgb_to_lab(x.float())
        ab = F.adaptive_avg_pool2d(lab[:, 1:], cfg.target_size)
        gray = gray_from_lightness(lab[:, :1])
    return PretextBatch(inputs=normalize(gray), targets=ab, source=x)


class Colorization(Method):
    """Predict the colours of a gray image: ab per pixel from the backbone's upsampled feature map.

    Colour is not a function of lightness, so the network must recognise what it sees (grass
    is green, sky is blue) to guess it. It fails where colour is arbitrary (cars, clothes, the
    random colours of ``shapes``), and an L2 regression is satisfied by grayish averages; the
    paper's classification over ab bins with rare colours reweighted keeps predictions vivid.
    The backbone trains on gray inputs and is evaluated on colour images.
    """

    name = "colorization"
    Config = ColorizationConfig

    def __init__(self, backbone: nn.Module, cfg: ColorizationConfig = ColorizationConfig()) -> None:
        super().__init__(backbone, cfg)
        classes = cfg.loss == "classification"
        self.encoder = SoftEncoder(cfg.grid)
        self.register_buffer("prior", torch.full((len(self.bins),), 1 / len(self.bins)))  # (Q,)
        self.register_buffer("prior_steps", torch.zeros((), dtype=torch.long))
        out = len(self.bins) if classes else 2
        self.decoder = ConvDecoder(backbone.num_features, out, feature_grid(backbone, cfg.image_size), cfg.target_size,
                                   cfg.decoder_width)

    @property
    def bins(self) -> Tensor:
        return self.encoder.bins  # (Q, 2)

    def decode_ab(self, prediction: Tensor) -> Tensor:
        """Decoder output -> ab (B, 2, s, s): annealed mean of the bin distribution (paper eq. 5)."""
        if self.cfg.loss == "regression":
            return prediction * 110  # regression predicts ab / 110, within about [-1, 1]
        probs = torch.softmax(prediction / self.cfg.annealed_t, dim=1)
        return torch.einsum("bqhw,qc->bchw", probs, self.bins)

    def forward_loss(self, prediction: Tensor, ab: Tensor) -> Tensor:
        """Rebalanced cross-entropy against soft-encoded targets (paper eq. 2), or L2 on ab / 110."""
        if self.cfg.loss == "regression":
            return F.mse_loss(prediction, ab / 110)
        index, weight = self.encoder(ab.permute(0, 2, 3, 1).reshape(-1, 2))  # (N, K) each
        if self.training:
            self.update_prior(torch.bincount(index.flatten(), weight.flatten(), len(self.bins)) / len(index))
        # Each pixel weighs as its nearest bin's rebalancing weight (eq. 2-3: v(Z) = w_q*).
        pixel_weight = rebalancing_weights(self.prior, self.bins, self.cfg.rebalance)[index[:, 0]]  # (N,)
        logp = F.log_softmax(prediction.permute(0, 2, 3, 1).reshape(-1, len(self.bins)), dim=1)  # (N, Q)
        return (pixel_weight * -(weight * logp.gather(1, index)).sum(1)).mean()

    @torch.no_grad()
    def update_prior(self, batch_distribution: Tensor) -> None:
        """Running estimate of the bin prior; the first batch sets it."""
        m = self.cfg.prior_momentum if self.prior_steps > 0 else 0.0
        self.prior.mul_(m).add_((1 - m) * batch_distribution)
        self.prior_steps += 1

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        task = make_task(images, generator, self.cfg)
        prediction, pooled = encode_decode(self.backbone, self.decoder, task.inputs)  # (B, Q or 2, s, s)
        with torch.autocast(prediction.device.type, enabled=False):
            loss = self.forward_loss(prediction, task.targets)
            with torch.no_grad():
                error = (self.decode_ab(prediction) - task.targets).norm(dim=1).mean().item()
                gray_error = task.targets.norm(dim=1).mean().item()
        return StepOutput(loss=loss, embedding=pooled.detach().float(),
                          logs={"color_loss": loss.item(), "ab_error": error, "ab_error_gray": gray_error})

    def view_pipelines(self) -> list[BatchViews]:
        return [views(self.cfg)]
