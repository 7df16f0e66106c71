"""The checkpoints the lab ships in assets/: small, rebuilt offline, with provenance, and better than
baselines on held-out images they never saw (Tiny-ImageNet val, or shapes drawn with an unused seed)."""

import json

import numpy as np
import pytest
import torch

from conftest import REAL_DATA
from sslcore.data import load_tinyimagenet_val, make_shapes, tinyimagenet_val_boxes
from sslcore.models.load import MAX_SHIPPED_BYTES, assets_dir, default_model, load_shipped, random_init
from sslcore.viz.quality import (box_score_table, centred_blob, fill_psnr, head_attention, head_mask_scores,
                                 head_mean_attention, mae_masks, reconstruction_psnr)

# name -> (kind, what it trained on); the pages open on the first of each kind (by name).
SHIPPED = {"dino_shapes_vit_tiny": ("vit", "shapes"), "dino_vit_tiny": ("vit", "tinyimagenet"),
           "mae_vit_tiny": ("mae", "tinyimagenet")}
DEFAULTS = {"vit": "dino_shapes_vit_tiny", "mae": "mae_vit_tiny"}
VAL = REAL_DATA / "tiny-imagenet-200" / "val"


@pytest.fixture(autouse=True)
def repository_assets(monkeypatch):
    monkeypatch.delenv("SSLCORE_ASSETS", raising=False)


@pytest.mark.parametrize("name, kind, data", [(n, k, d) for n, (k, d) in SHIPPED.items()])
def test_shipped_checkpoint_is_small_offline_and_documented(name, kind, data):
    path = assets_dir() / f"{name}.safetensors"
    assert path.stat().st_size <= MAX_SHIPPED_BYTES
    loaded = load_shipped(name)
    assert loaded.kind == kind and loaded.source == f"shipped {name}"
    assert default_model(kind).source == f"shipped {DEFAULTS[kind]}"
    config = json.loads(path.with_suffix(".json").read_text())
    prov = config["provenance"]
    assert config["dtype"] == "float16" and config["image_size"] == 64 and config["backbone"] == "vit_tiny"
    if data == "shapes":  # the embedded data: nothing to download, the masks to score attention against
        assert prov["command"].startswith(f"sslcore train --method {config['method']} --dataset shapes")
        assert prov["data_dir"] is None and prov["metrics"]["heldout"].startswith("shapes")
    else:
        assert prov["command"].startswith(f"sslcore train --method {config['method']} --dataset folder")
        assert prov["data_dir"] == ".cache/data/tiny-imagenet-200/train" and prov["eval_dir"] is None
        assert prov["metrics"]["heldout"].startswith("Tiny-ImageNet val")
    assert prov["steps"] > 0 and prov["device"] == "cpu" and "CPU" in prov["note"]
    note = path.with_suffix(".md").read_text()
    assert prov["command"] in note and prov["note"] in note


def test_shipped_shapes_dino_attention_finds_the_object():
    """On shapes it never saw, its CLS attention lands on the object: above uniform attention (the object's
    area), a random-init ViT and a centred blob, for the head mean and for its best head."""
    data = make_shapes(300, 64, seed=3_000_003)  # neither training (0), the run's held-out split nor the benchmark's
    images, masks = data.images.float() / 255, data.masks.numpy()
    trained = head_attention(load_shipped("dino_shapes_vit_tiny").vit, images)  # (N, heads, 8, 8)
    untrained = head_attention(random_init("vit", {"backbone": "vit_tiny", "image_size": 64}).vit, images)
    scored = head_mask_scores(trained, masks, 8, 0.6)
    random = head_mask_scores(untrained, masks, 8, 0.6)
    blob_maps = np.broadcast_to(centred_blob(8, 8, 2.0), (len(images), 1, 8, 8))
    blob = head_mask_scores(blob_maps, masks, 8, 0.6)["mean_top"]
    uniform = float(masks.mean())
    mean, best = scored["mean_top"], scored["best_top"]
    recorded = json.loads((assets_dir() / "dino_shapes_vit_tiny.json").read_text())["provenance"]["metrics"]
    assert mean == pytest.approx(recorded["attention_top60_mass_in_object"], abs=0.05)
    assert mean > max(blob, random["mean_top"], uniform), (mean, blob, random, uniform)
    assert best > max(blob, random["best_top"], uniform) + 0.15, (best, blob, random, uniform)


@pytest.fixture(scope="module")
def held_out():
    if not (VAL / "val_annotations.txt").exists():
        pytest.skip("Tiny-ImageNet val is not extracted (make test extracts ../shared/data into .cache/data)")
    data, names = load_tinyimagenet_val(VAL, 64)
    boxes = tinyimagenet_val_boxes(VAL)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))[:300]  # not viz_quality's seed
    return data.images[pick], [boxes[names[i]][1:] for i in pick.tolist()]


def test_shipped_mae_fills_hidden_patches_better_than_the_visible_pixels_alone(held_out):
    images, _ = held_out
    mae = load_shipped("mae_vit_tiny").model
    masks = mae_masks(len(images), (64 // mae.patch, 64 // mae.patch), 0.75, seed=1)
    trained = reconstruction_psnr(mae, images, masks).mean()
    blur = fill_psnr(images, masks, mae.patch, mae.patch / 2).mean()
    # Measured on these 300 images: 15.55 dB against 14.77 (blur) and 13.01 (mean colour).
    assert trained > blur + 0.4 > fill_psnr(images, masks, mae.patch).mean(), (trained, blur)


def test_shipped_dino_attention_is_trained_and_measured_as_its_note_says(held_out):
    images, boxes = held_out
    vit = load_shipped("dino_vit_tiny").vit
    trained = head_mean_attention(vit, images.float() / 255)
    untrained = head_mean_attention(random_init("vit", {"backbone": "vit_tiny", "image_size": 64}).vit,
                                    images.float() / 255)
    in_box = box_score_table(trained, boxes, 8, 0.6)[:, 1].mean()
    blob = box_score_table(np.broadcast_to(centred_blob(8, 8, 2.0), trained.shape), boxes, 8, 0.6)[:, 1].mean()
    recorded = json.loads((assets_dir() / "dino_vit_tiny.json").read_text())["provenance"]["metrics"]
    assert np.abs(trained - untrained).mean() > 0.01  # its maps are its own, not a random ViT's
    # The CPU checkpoint does not localise objects yet; its note says so with these numbers.
    assert in_box == pytest.approx(recorded["attention_top60_mass_in_box"], abs=0.05)
    assert blob == pytest.approx(recorded["centred_blob_top60_mass_in_box"], abs=0.05)
