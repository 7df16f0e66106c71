"""Quality measures on cases with known answers."""

import math

import numpy as np
import pytest
import timm
import torch

from sslcore.augment import normalize
from sslcore.methods import create_method
from sslcore.models import create_backbone
from sslcore.viz.attention import attention_maps
from sslcore.viz.mae import mae_reconstruct
from sslcore.viz.quality import (blur_fill, box_mask, box_score_table, box_scores, centred_blob, fill_psnr,
                                 head_attention, head_mask_scores, head_mean_attention, mae_masks, mask_score_table,
                                 mass_inside, masked_psnr, mean_fill, patch_mask_to_pixels, patch_to_pixels,
                                 reconstruction_psnr)


def test_box_mask_corners_are_inclusive_and_clipped():
    m = box_mask((4, 5), (1, 2, 3, 3))
    assert m.sum() == 3 * 2 and m[2, 1] and m[3, 3] and not m[1, 1] and not m[2, 4]
    assert box_mask((4, 4), (-3, -3, 10, 10)).all()
    with pytest.raises(ValueError):
        box_mask((4, 4), (3, 0, 1, 2))


def test_attention_entirely_inside_the_box_scores_one():
    att = np.zeros((8, 8))
    att[2:4, 3:6] = [[0.1, 0.2, 0.3], [0.2, 0.1, 0.1]]
    box = (3 * 8, 2 * 8, 6 * 8 - 1, 4 * 8 - 1)  # exactly those patches, in 8 px pixels
    assert box_scores(att, box, patch=8) == (pytest.approx(1.0), pytest.approx(1.0))


def test_uniform_attention_scores_the_box_area():
    plain, thresholded = box_scores(np.ones((8, 8)), (0, 0, 31, 15), patch=8)
    assert plain == pytest.approx(32 * 16 / 64**2)
    # Ties: the threshold keeps the first 60% of the equal patches, whatever they are; only plain is analytic.
    assert 0 <= thresholded <= 1


def test_threshold_drops_the_tail_outside_the_box():
    att = np.zeros((2, 2))
    att[0, 0], att[1, 1] = 0.7, 0.3
    plain, thresholded = box_scores(att, (0, 0, 3, 3), patch=4, mass=0.6)  # the box is patch (0, 0)
    assert plain == pytest.approx(0.7) and thresholded == 1.0
    assert box_scores(att, (0, 0, 3, 3), patch=4, mass=1.0)[1] == pytest.approx(0.7)


def test_box_score_table_scores_each_map_with_its_own_box():
    maps = np.zeros((2, 2, 2))
    maps[0, 0, 0] = maps[1, 1, 1] = 1.0
    boxes = [(0, 0, 3, 3), (0, 0, 3, 3)]  # patch (0, 0) for both: only the first map is inside
    table = box_score_table(maps, boxes, patch=4)
    assert table.shape == (2, 2) and table.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert table.tolist() == [list(box_scores(m, b, 4)) for m, b in zip(maps, boxes)]
    with pytest.raises(ValueError, match="2 maps for 1 boxes"):
        box_score_table(maps, boxes[:1], patch=4)


def test_box_cutting_a_patch_counts_its_covered_share():
    att = np.zeros((2, 2))
    att[0, 0] = 1.0
    assert box_scores(att, (0, 0, 3, 7), patch=8)[0] == pytest.approx(0.5)  # 4 of the patch's 8 columns


def test_centred_blob_matches_the_separable_gaussian():
    h = w = 8
    sigma = 2.0
    blob = centred_blob(h, w, sigma)
    assert blob.sum() == pytest.approx(1) and blob.argmax() in (27, 28, 35, 36)  # the four centre cells
    # Box over the central 4x4 patches: the mass is the square of the 1-D share of cells 2..5.
    g = [math.exp(-((i + 0.5 - 4) ** 2) / (2 * sigma**2)) for i in range(8)]
    share = sum(g[2:6]) / sum(g)
    plain, _ = box_scores(blob, (16, 16, 47, 47), patch=8)
    assert plain == pytest.approx(share**2)
    with pytest.raises(ValueError):
        centred_blob(4, 4, 0)


def test_mass_inside_of_an_empty_map_is_zero():
    assert mass_inside(np.zeros((3, 3)), np.ones((3, 3), bool)) == 0.0


def test_psnr_perfect_known_and_visible_ignored():
    rng = np.random.default_rng(0)
    target = rng.random((3, 8, 8))
    hidden = patch_mask_to_pixels(np.array([1, 0, 0, 1]), (2, 2), 4)
    assert hidden.sum() == 32 and hidden[0, 0] and not hidden[0, 4] and hidden[7, 7]
    assert masked_psnr(target, target, hidden) == 100.0
    pred = np.where(hidden[None], target + 0.1, target + 0.5)  # the visible error must not count
    assert masked_psnr(pred, target, hidden) == pytest.approx(20.0)  # MSE 0.01
    assert masked_psnr(pred.transpose(1, 2, 0), target.transpose(1, 2, 0), hidden) == pytest.approx(20.0)
    with pytest.raises(ValueError):
        masked_psnr(pred, target, np.zeros((8, 8), bool))


def test_mean_fill_by_hand():
    image = np.zeros((3, 2, 4))
    image[0] = [[0.0, 0.2, 0.9, 0.9], [0.4, 0.6, 0.9, 0.9]]
    image[1] = 0.5
    hidden = patch_to_pixels(np.array([[False, True]]), 2)  # the right 2x2 patch
    filled = mean_fill(image, hidden)
    np.testing.assert_allclose(filled[0, :, 2:], 0.3)  # mean of 0, 0.2, 0.4, 0.6
    assert np.allclose(filled[1], 0.5) and np.allclose(filled[2], 0)
    assert np.array_equal(filled[:, :, :2], image[:, :, :2])


def test_blur_fill_spreads_visible_colours():
    image = np.full((3, 16, 16), 0.25)
    hidden = np.zeros((16, 16), bool)
    hidden[4:12, 4:12] = True
    noisy = np.where(hidden[None], np.random.default_rng(0).random((3, 16, 16)), image)
    np.testing.assert_allclose(blur_fill(noisy, hidden, sigma=2.0), image)  # a flat surround fills flat
    # Left half red, right half blue, a hidden band between: the fill goes from red to blue.
    two = np.zeros((3, 8, 16))
    two[0, :, :8], two[2, :, 8:] = 1, 1
    band = np.zeros((8, 16), bool)
    band[:, 6:10] = True
    out = blur_fill(two, band, sigma=1.5)
    assert np.all(np.diff(out[0, 4, 5:11]) <= 1e-12) and out[0, 4, 6] > 0.5 > out[0, 4, 9]
    assert np.array_equal(out[:, ~band], two[:, ~band])
    # Far from every visible pixel the blur weight underflows and the visible mean colour is used.
    far = np.zeros((64, 64), bool)
    far[:, 2:] = True
    img = np.zeros((3, 64, 64))
    img[1, :, :2] = 0.8
    np.testing.assert_allclose(blur_fill(img, far, sigma=0.5)[:, 10, 60], [0, 0.8, 0])


def test_head_mean_attention_is_the_viewers_map_batched():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, patch_size=8,
                            depth=2, dynamic_img_size=True)
    images = torch.rand(5, 3, 32, 32)
    batched = head_mean_attention(vit, images, batch=2)
    assert batched.shape == (5, 4, 4) and vit.training  # mode restored
    for image, got in zip(images, batched):
        np.testing.assert_allclose(got, attention_maps(vit, normalize(image[None])[0]).mean(0), atol=1e-5)
    heads = head_attention(vit, images, batch=3)
    assert heads.shape == (5, 3, 4, 4)  # vit_tiny: 3 heads
    np.testing.assert_allclose(heads.mean(1), batched, atol=1e-6)
    np.testing.assert_allclose(heads[0], attention_maps(vit, normalize(images[:1])[0]), atol=1e-5)


def test_mask_scores_read_the_object_mask_like_box_scores_read_the_box():
    # Two 2x2-patch maps at patch 2 (4x4 px): an object mask, and the box that holds the same pixels.
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, :2, :2] = True  # the top-left patch
    masks[1, 2:, :] = True  # the bottom row of patches
    inside = np.array([[[1.0, 0], [0, 0]], [[0, 0], [0.5, 0.5]]])
    uniform = np.ones((2, 2, 2))
    np.testing.assert_allclose(mask_score_table(inside, masks, 2), [[1, 1], [1, 1]])
    np.testing.assert_allclose(mask_score_table(uniform, masks, 2)[:, 0], [0.25, 0.5])  # the object's area
    np.testing.assert_allclose(mask_score_table(uniform, masks, 2),
                               box_score_table(uniform, [(0, 0, 1, 1), (0, 2, 3, 3)], 2))
    # A mask that cuts through a patch counts the patch's covered share, as a box does.
    half = np.zeros((1, 4, 4), dtype=bool)
    half[0, 0, :2] = True
    assert mask_score_table(np.ones((1, 2, 2)), half, 2)[0, 0] == pytest.approx(2 / 16)
    with pytest.raises(ValueError):
        mask_score_table(uniform, masks[:1], 2)


def test_head_mask_scores_score_the_head_mean_and_pick_the_head_on_the_object():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[:, :2, :2] = True  # the top-left patch of a 2x2-patch grid at patch 2
    off, on, uniform = np.array([[0, 0], [0, 1.0]]), np.array([[1.0, 0], [0, 0]]), np.ones((2, 2))
    maps = np.stack([np.stack([off, on, uniform])] * 2)  # (N=2, heads=3, 2, 2)
    scores = head_mask_scores(maps, masks, 2)
    assert (scores["best_head"], scores["best_plain"], scores["best_top"]) == (2, 1.0, 1.0)
    # Head mean [[2/3, 1/3], [1/3, 2/3]]: a third of it on the object; its top 60% is the two 2/3 patches.
    assert scores["mean_plain"] == pytest.approx(1 / 3) and scores["mean_top"] == pytest.approx(0.5)


def test_reconstruction_and_fill_psnr_per_image():
    torch.manual_seed(0)
    mae = create_method("mae", create_backbone("vit_tiny", 32), 32).eval()
    side = 32 // mae.patch
    grid, n_hidden = (side, side), int(0.75 * side * side)
    images = (torch.rand(3, 3, 32, 32) * 255).to(torch.uint8)
    masks = mae_masks(3, grid, 0.75, seed=1)
    assert torch.equal(masks, mae_masks(3, grid, 0.75, seed=1)) and (masks.sum(1) == n_hidden).all()
    psnr = reconstruction_psnr(mae, images, masks, batch=2)
    for image, mask, got in zip(images, masks, psnr):  # the MAE page's panel of the same image and mask
        panel = mae_reconstruct(mae, image, mask=mask.reshape(grid))
        hidden = patch_mask_to_pixels(mask.numpy(), grid, mae.patch)
        assert got == pytest.approx(masked_psnr(panel.reconstruction, panel.original, hidden), abs=1e-4)
    x = images.float().numpy() / 255
    for sigma in (None, 4.0):
        expected = [masked_psnr(mean_fill(img, h) if sigma is None else blur_fill(img, h, sigma), img, h)
                    for img, h in ((x[i], patch_mask_to_pixels(masks[i].numpy(), grid, mae.patch)) for i in range(3))]
        np.testing.assert_allclose(fill_psnr(images, masks, mae.patch, sigma), expected)
    norm_pix = create_method("mae", create_backbone("vit_tiny", 32), 32, norm_pix_loss=True)
    with pytest.raises(ValueError, match="norm-pix"):
        reconstruction_psnr(norm_pix, images, masks)
