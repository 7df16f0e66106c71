import math

import pytest
import torch

from sslcore.augment import BatchViews, ViewConfig, denormalize, normalize, pair_correlation, recipe


def images(n=16, size=32, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_shape_range_and_determinism():
    views = BatchViews(recipe("simclr", 24, normalize=False))
    x = images()
    a = views(x, torch.Generator().manual_seed(3))
    b = views(x, torch.Generator().manual_seed(3))
    assert a.shape == (16, 3, 24, 24) and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, views(x, torch.Generator().manual_seed(4)))


def test_identity_recipe_is_identity():
    x = images()
    out = BatchViews(recipe("none", 32, normalize=False))(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x.float() / 255, atol=1e-5)


def test_flip_always_mirrors():
    x = images(4)
    cfg = ViewConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip_p=1.0, jitter_p=0, gray_p=0, normalize=False)
    out = BatchViews(cfg)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x.float().flip(-1) / 255, atol=1e-5)


def test_per_sample_randomness():
    # One image repeated: each copy must get its own crop and colour.
    x = images(1).repeat(8, 1, 1, 1)
    out = BatchViews(recipe("simclr", 32))(x, torch.Generator().manual_seed(0))
    distinct = {tuple(v.flatten()[:50].tolist()) for v in out}
    assert len(distinct) == 8


def test_grayscale_probability_one_gives_equal_channels():
    cfg = ViewConfig(jitter_p=0, gray_p=1.0, normalize=False)
    out = BatchViews(cfg)(images(), torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])


def test_hue_rotation_keeps_gray_and_full_turn():
    from sslcore.augment import _hue_rotate

    gray = torch.full((2, 3, 4, 4), 0.5)
    assert torch.allclose(_hue_rotate(gray, torch.tensor([0.1, -0.3])), gray, atol=1e-5)
    x = torch.rand(2, 3, 4, 4) * 0.5 + 0.25
    assert torch.allclose(_hue_rotate(x, torch.tensor([0.0, 0.0])), x, atol=1e-5)


def test_blur_and_solarize():
    x = images(8)
    blurred = BatchViews(ViewConfig(crop_scale=(1, 1), crop_ratio=(1, 1), hflip_p=0, jitter_p=0, gray_p=0,
                                    blur_p=1.0, blur_sigma=(2.0, 2.0), normalize=False))(x, torch.Generator())
    # Blur removes high-frequency energy of random noise images.
    assert blurred.diff(dim=-1).abs().mean() < (x.float() / 255).diff(dim=-1).abs().mean() / 2
    sol = BatchViews(ViewConfig(crop_scale=(1, 1), crop_ratio=(1, 1), hflip_p=0, jitter_p=0, gray_p=0,
                                solarize_p=1.0, normalize=False))(x, torch.Generator())
    assert sol.max() <= 0.5 + 1e-6


def test_normalize_round_trip():
    x = torch.rand(2, 3, 5, 5)
    assert torch.allclose(denormalize(normalize(x)), x, atol=1e-6)


def test_pair_correlation():
    a = torch.rand(3, 3, 8, 8)
    corr = pair_correlation(a, a * 2 + 1)
    assert torch.allclose(corr, torch.ones(3), atol=1e-5)
    assert pair_correlation(a, 1 - a)[0].item() == pytest.approx(-1, abs=1e-5)


def test_config_validation():
    with pytest.raises(ValueError, match="crop_scale"):
        ViewConfig(crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="probability"):
        ViewConfig(gray_p=1.5)
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("nope", 32)


def test_crop_area_matches_scale_range():
    # Crops of a 0/1 half-image: the mean of a view estimates which part was cropped; with scale
    # (1, 1) and ratio 1 every crop is the whole image, so the mean equals the image mean.
    x = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    x[..., 16:] = 255
    out = BatchViews(ViewConfig(crop_scale=(1, 1), crop_ratio=(1, 1), jitter_p=0, gray_p=0, normalize=False))(
        x, torch.Generator().manual_seed(0))
    assert out.mean().item() == pytest.approx(0.5, abs=1e-3)
    small = BatchViews(ViewConfig(crop_scale=(0.05, 0.05), crop_ratio=(1, 1), jitter_p=0, gray_p=0, normalize=False))(
        x, torch.Generator().manual_seed(0))
    # Small crops land mostly inside one half: per-view means are near 0 or 1, not 0.5.
    assert (small.mean((1, 2, 3)) - 0.5).abs().mean() > 0.3
    assert math.isclose(float(small.mean()), 0.5, abs_tol=0.15)


def test_rotation_turns_the_view_about_its_centre():
    size = 32
    u = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    disc = ((xx**2 + yy**2) < 0.4).to(torch.uint8).mul(255).expand(8, 3, size, size).contiguous()
    bar = ((yy.abs() < 0.15) & (xx.abs() < 0.8)).to(torch.uint8).mul(255).expand(8, 3, size, size).contiguous()
    still = dict(crop_scale=(1, 1), crop_ratio=(1, 1), hflip_p=0, jitter_p=0, gray_p=0, normalize=False)
    rotate = BatchViews(ViewConfig(rotation=180, **still))
    # A centred disc is rotation invariant; a horizontal bar is not, and each sample turns its own way.
    turned = rotate(bar, torch.Generator().manual_seed(0))
    bar_change = (turned - bar.float() / 255).abs().mean()
    disc_change = (rotate(disc, torch.Generator().manual_seed(0)) - disc.float() / 255).abs().mean()
    assert disc_change < bar_change / 4  # the disc only changes at its edge, by interpolation
    assert len({round(v.sum().item(), 2) for v in turned[:, 0, :, :16]}) > 4
    # No rotation asked: the recipe is the identity, as before.
    assert torch.allclose(BatchViews(ViewConfig(**still))(bar, torch.Generator()), bar.float() / 255, atol=1e-5)
    with pytest.raises(ValueError, match="rotation"):
        ViewConfig(rotation=200)
