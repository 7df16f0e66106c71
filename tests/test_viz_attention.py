import numpy as np
import pytest
import timm
import torch

from PIL import Image

from sslcore.data import DataError
from sslcore.viz.attention import (CONTOUR_RGB, attention_maps, attention_panels, cls_attention, crop_to_patch_multiple,
                                   heat, mask_boundary, overlay, pca_rgb, resize_longer_side, threshold_mass, upsample)


def small_vit():
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, patch_size=8,
                             depth=3, dynamic_img_size=True).eval()


def reference_last_selfattention(model, image, block):
    """The DINO repo's procedure, by hand: run the blocks before ``block``, then form its attention."""
    x = model.patch_embed(image[None])
    x = model._pos_embed(x)
    x = model.norm_pre(x)
    for blk in model.blocks[:block]:
        x = blk(x)
    blk = model.blocks[block]
    y = blk.norm1(x)
    b, n, c = y.shape
    heads = blk.attn.num_heads
    qkv = blk.attn.qkv(y).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    attn = (q @ k.transpose(-2, -1) * (c // heads) ** -0.5).softmax(-1)
    return attn[0, :, 0, 1:]  # (heads, patches)


@pytest.mark.parametrize("block", [0, 1, 2])
def test_matches_reference_procedure(block):
    model = small_vit()
    image = torch.randn(3, 32, 48)  # non-square: 4x6 patches
    with torch.no_grad():
        expected = reference_last_selfattention(model, image, block).reshape(3, 4, 6).numpy()
    got = attention_maps(model, image, block=block)
    assert got.shape == (3, 4, 6)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_fused_flag_restored_and_features():
    model = small_vit()
    flags = [blk.attn.fused_attn for blk in model.blocks]
    res = cls_attention(model, torch.randn(3, 32, 32), block=-1)
    assert [blk.attn.fused_attn for blk in model.blocks] == flags
    assert res.features.shape == (4, 4, 192) and res.grid == (4, 4) and res.patch == 8
    assert np.all(res.attention.reshape(3, -1).sum(1) <= 1 + 1e-5)  # CLS also attends to itself


def test_threshold_keeps_top_mass():
    att = np.array([[[0.5, 0.3], [0.15, 0.05]]])
    assert threshold_mass(att, 0.6).tolist() == [[[True, True], [False, False]]]
    assert threshold_mass(att, 0.5).tolist() == [[[True, False], [False, False]]]
    assert threshold_mass(att, 1.0).all()


def test_crop_upsample_pca():
    img = torch.zeros(3, 37, 50)
    assert crop_to_patch_multiple(img, 8).shape == (3, 32, 48)
    up = upsample(np.arange(4, dtype=np.float32).reshape(1, 2, 2), 3)
    assert up.shape == (1, 6, 6) and up[0, 0, 0] == 0 and up[0, 5, 5] == 3
    rgb = pca_rgb(np.random.default_rng(0).standard_normal((4, 5, 16)))
    assert rgb.shape == (4, 5, 3) and rgb.min() >= 0 and rgb.max() <= 1


def test_mask_boundary_is_the_inner_contour():
    mask = np.zeros((6, 7), dtype=bool)
    mask[1:5, 2:6] = True  # a 4x4 square
    edge = mask_boundary(mask)
    expected = mask.copy()
    expected[2:4, 3:5] = False  # the 2x2 interior is not on the contour
    assert edge.tolist() == expected.tolist()
    assert mask_boundary(mask, width=2).tolist() == mask.tolist()  # 4 wide: no pixel is 2 deep inside
    full = np.ones((4, 4), dtype=bool)
    assert not mask_boundary(full).any()  # the image border is not an edge
    assert not mask_boundary(np.zeros((4, 4), dtype=bool)).any()
    with pytest.raises(ValueError):
        mask_boundary(mask, width=0)


def test_panels_keep_aspect_and_threshold_the_head_mean():
    model = small_vit()
    image = torch.rand(3, 37, 70)
    p = attention_panels(model, image, block=-1, mass=0.6)
    assert p.image.shape == (32, 64, 3)  # cropped to whole 8 px patches, not squashed to a square
    assert p.heads.shape == (3, 32, 64) and p.kept.shape == (3, 32, 64) and p.kept_mean.shape == (32, 64)
    from sslcore.augment import normalize

    att = attention_maps(model, normalize(crop_to_patch_multiple(image, 8)[None])[0])  # (3, 4, 8)
    expected = threshold_mass(att.mean(0, keepdims=True), 0.6)[0]
    assert p.kept_mean.tolist() == upsample(expected[None].astype(np.float32), 8)[0].astype(bool).tolist()


def test_overlay_draws_the_contour_of_the_chosen_view():
    model = small_vit()
    p = attention_panels(model, torch.rand(3, 32, 32), mass=0.3)
    for head, kept in [(None, p.kept_mean), (1, p.kept[1])]:
        shown = overlay(p, 0.5, head=head, contour=True)
        plain = overlay(p, 0.5, head=head, contour=False)
        edge = mask_boundary(kept)
        assert edge.any()
        assert np.allclose(shown[edge], CONTOUR_RGB) and np.allclose(shown[~edge], plain[~edge])
    np.testing.assert_allclose(overlay(p, 1.0, head=2, contour=False), heat(p.heads[2]))


def test_pca_rgb_is_the_first_three_principal_components():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((5, 6, 16)) * np.linspace(3, 0.1, 16)  # distinct variances: unique components
    x = feats.reshape(-1, 16) - feats.reshape(-1, 16).mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    ref = x @ vt[:3].T
    got = pca_rgb(feats).reshape(-1, 3)
    for c in range(3):  # each channel is its component rescaled to [0, 1], up to the component's sign
        r = (ref[:, c] - ref[:, c].min()) / np.ptp(ref[:, c])
        assert np.allclose(got[:, c], r, atol=1e-5) or np.allclose(got[:, c], 1 - r, atol=1e-5)
    assert pca_rgb(rng.standard_normal((2, 2, 2)))[..., 2].max() == 0  # fewer than 3 features: black channel


@pytest.mark.parametrize("w,h", [(1, 4000), (4000, 1), (2, 2), (1, 1)])
def test_resize_longer_side_refuses_a_side_under_8_px(w, h):
    with pytest.raises(DataError) as e:
        resize_longer_side(Image.new("RGB", (w, h)), 448)
    assert str(e.value) == f"This image is {w}x{h} px: each side must be at least 8 px, one patch of a ViT with 8 px patches"


@pytest.mark.parametrize("w,h", [(20000, 8), (8, 20000)])
def test_extreme_aspect_is_centre_cropped_to_4_to_1_and_shown(w, h):
    """A 20000x8 panorama used to become a 448x1 strip, less than one patch: now its centre 32x8 px."""
    img = Image.new("RGB", (w, h), (0, 0, 255))
    centre = (w // 2 - 16, 0, w // 2 + 16, h) if w > h else (0, h // 2 - 16, w, h // 2 + 16)
    img.paste((255, 0, 0), centre)  # the centre 32 px red, everything else blue
    x = resize_longer_side(img, 448)
    assert tuple(x.shape) == ((3, 112, 448) if w > h else (3, 448, 112))
    assert torch.equal(x, resize_longer_side(img.crop(centre), 448))
    assert x[0].min() == 1 and x[2].max() == 0  # only the red centre survives
    p = attention_panels(small_vit(), x)
    assert p.image.shape == ((112, 448, 3) if w > h else (448, 112, 3)) and p.heads.shape[1:] == p.image.shape[:2]


def test_less_than_one_patch_is_a_clear_data_error():
    big_patch = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=64, patch_size=32,
                                  depth=1, dynamic_img_size=True).eval()
    x = resize_longer_side(Image.new("RGB", (256, 64)), 64)  # 64x16: a 4:1 image at the smallest size
    with pytest.raises(DataError) as e:
        attention_panels(big_patch, x)
    assert str(e.value) == ("At this size the image is 64x16 px, less than one 32 px patch of this ViT along a side: "
                            "choose a larger size.")
    assert attention_panels(big_patch, resize_longer_side(Image.new("RGB", (256, 64)), 128)).image.shape == (32, 128, 3)


def test_a_dino_vit_run_previews_its_teachers_attention_and_a_convnet_run_none(tmp_path):
    import io
    from dataclasses import asdict

    from sslcore.data import make_shapes
    from sslcore.runs import RunConfig, RunStore
    from sslcore.runs.execute import execute
    from sslcore.runs.monitors import read_preview
    from sslcore.runs.saved import load_run
    from sslcore.viz import previews
    from sslcore.viz.attention import overlay

    store = RunStore(tmp_path)
    runs = {}
    for backbone in ("vit_tiny", "convnet"):
        cfg = RunConfig(method="dino", backbone=backbone, dataset="shapes", steps=2, max_seconds=None, batch_size=16,
                        train_size=64, knn_bank=100, knn_test=50)
        runs[backbone] = store.create(asdict(cfg))
        execute(cfg, store, runs[backbone], log=lambda s: None)
    assert read_preview(store.run_dir(runs["convnet"])) is None  # no attention to show
    png, text = read_preview(store.run_dir(runs["vit_tiny"]))
    assert text["step"] == "2" and "teacher's attention" in text["caption"]
    image = np.asarray(Image.open(io.BytesIO(png)))
    assert image.shape == (2 * 96 + 2, 6 * 96 + 5 * 2, 3)  # image and attention rows, 6 images at 3x, 2 px gaps
    # The attention row is the attention page's overlay of the teacher, for the same image.
    method, _ = load_run(store.run_dir(runs["vit_tiny"]))
    picture = make_shapes(6, 32, 1).images
    grid = previews.preview(method, picture)
    page = overlay(attention_panels(method.teacher_backbone, picture[0].float() / 255), 0.6)
    expected = np.round(np.clip(np.repeat(np.repeat(page, 3, 0), 3, 1), 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(grid[98:98 + 96, :96], expected)


def test_display_size_starts_photos_at_twice_the_training_size_and_samples_at_it():
    from sslcore.viz.attention import display_size

    assert display_size(64, drawn=False) == 128 and display_size(64, drawn=True) == 64
    assert display_size(224, drawn=False) == 448 and display_size(32, drawn=True) == 64
    assert display_size(None, drawn=True) == 224  # hub models: their size is unknown
