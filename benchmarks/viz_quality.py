"""Held-out quality of the shipped DINO and MAE against baselines, on Tiny-ImageNet val (64 px, boxes).

Neither checkpoint saw these images: both train on the Tiny-ImageNet train split (assets/README.md).

Attention (DINO, Caron et al. 2021): per image, the head-mean CLS attention of the last block; the
share of its mass inside the labelled box (plain), and the share of the map thresholded to the
patches holding its top 60% of mass (DINO's visualisation) inside the box. Against a random-init
ViT of the same architecture, a centred Gaussian blob, and uniform attention (the box's area).

MAE (He et al. 2022): PSNR over the hidden pixels (75% random masking, one seeded mask per image,
the same for every method) of the reconstruction, against filling the hidden patches with the
visible pixels' mean colour, and with a Gaussian-blurred spread of the visible pixels.

    flock /tmp/sslcore-cpu.lock .venv/bin/python benchmarks/viz_quality.py [--dino NAME|RUN_DIR]
        [--mae NAME|RUN_DIR] [--n 2000] [--metrics-out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sslcore.data import load_tinyimagenet_val, tinyimagenet_val_boxes
from sslcore.models.load import LoadedModel, default_model, load_shipped, random_init
from sslcore.runs.saved import from_run
from sslcore.viz.quality import (box_score_table, centred_blob, fill_psnr, head_mean_attention, mae_masks,
                                 reconstruction_psnr)

VAL = Path(__file__).parents[1] / ".cache" / "data" / "tiny-imagenet-200" / "val"


def source(spec: str | None, kind: str) -> LoadedModel:
    if spec is None:
        return default_model(kind)
    return from_run(spec) if Path(spec).is_dir() else load_shipped(spec)


def attention_quality(loaded: LoadedModel, images: torch.Tensor, boxes: list[tuple[int, int, int, int]],
                      mass: float) -> dict[str, dict[str, float]]:
    vit = loaded.vit
    patch = vit.patch_embed.patch_size[0]
    rand = random_init("vit", {k: loaded.config[k] for k in ("backbone", "image_size") if k in loaded.config}).vit
    maps = {"trained": head_mean_attention(vit, images), "random init": head_mean_attention(rand, images)}
    h, w = maps["trained"].shape[1:]
    maps["centred blob"] = np.broadcast_to(centred_blob(h, w, sigma=h / 4), maps["trained"].shape)
    scores = {name: box_score_table(ms, boxes, patch, mass) for name, ms in maps.items()}
    area = box_score_table(np.ones((len(boxes), h, w)), boxes, patch, mass)[:, 0]
    out = {name: {"mass_in_box": float(s[:, 0].mean()), f"mass{int(mass * 100)}_in_box": float(s[:, 1].mean())}
           for name, s in scores.items()}
    out["uniform (box area)"] = {"mass_in_box": float(area.mean()), f"mass{int(mass * 100)}_in_box": float(area.mean())}
    for name in ("random init", "centred blob"):
        wins = scores["trained"][:, 1] > scores[name][:, 1]
        out["trained"][f"wins_vs_{name.replace(' ', '_')}"] = float(wins.mean())
    return out


def mae_quality(loaded: LoadedModel, images: torch.Tensor, ratio: float, seed: int) -> dict[str, float]:
    mae = loaded.model
    masks = mae_masks(len(images), (images.shape[-2] // mae.patch, images.shape[-1] // mae.patch), ratio, seed)
    rand = random_init("mae", {k: loaded.config[k] for k in ("backbone", "image_size", "options")
                               if k in loaded.config}).model
    psnr = {"trained": reconstruction_psnr(mae, images, masks), "random init": reconstruction_psnr(rand, images, masks),
            "mean colour fill": fill_psnr(images, masks, mae.patch),
            "blur fill (sigma = patch/2)": fill_psnr(images, masks, mae.patch, mae.patch / 2),
            "blur fill (sigma = patch)": fill_psnr(images, masks, mae.patch, mae.patch)}
    return {name: float(v.mean()) for name, v in psnr.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dino", help="shipped checkpoint name or run folder (default: the first shipped DINO)")
    parser.add_argument("--mae", help="shipped checkpoint name or run folder (default: the first shipped MAE)")
    parser.add_argument("--val", default=str(VAL), help="Tiny-ImageNet val folder (images/ + val_annotations.txt)")
    parser.add_argument("--n", type=int, default=2000, help="images (a seeded sample of the 10,000)")
    parser.add_argument("--mass", type=float, default=0.6)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metrics-out", help="folder for dino.json and mae.json (for `sslcore export --metrics`)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    dino, mae = source(args.dino, "vit"), source(args.mae, "mae")
    data, names = load_tinyimagenet_val(args.val, 64)
    all_boxes = tinyimagenet_val_boxes(args.val)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))[:args.n].sort().values
    images = data.images[pick]  # (n, 3, 64, 64) uint8
    boxes = [all_boxes[names[i]][1:] for i in pick.tolist()]

    results = {}
    for kind, loaded in (("dino", dino), ("mae", mae)):
        size = loaded.image_size or 64
        s = size / 64  # the model's own resolution; boxes scale with the image
        x = images if size == 64 else F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True,
                                                    align_corners=False).round().clamp(0, 255).to(torch.uint8)
        scaled = [tuple(int(round(v * s)) for v in b) for b in boxes]
        if kind == "dino":
            results[kind] = {"model": loaded.source, "images": len(x), "resolution": size,
                             "attention": attention_quality(loaded, x.float() / 255, scaled, args.mass)}
        else:
            results[kind] = {"model": loaded.source, "images": len(x), "resolution": size,
                             "mask_ratio": args.mask_ratio,
                             "psnr_hidden_db": mae_quality(loaded, x, args.mask_ratio, args.seed)}

    print(f"Tiny-ImageNet val, {len(images)} held-out images, seed {args.seed}")
    print(f"\nAttention of {results['dino']['model']} (last block, head mean), mass inside the labelled box:")
    print(f"| {'map':22s} | plain | top {args.mass:.0%} mass |")
    print(f"|{'-' * 24}|-------|--------------|")
    for name, r in results["dino"]["attention"].items():
        print(f"| {name:22s} | {r['mass_in_box']:.3f} | {r[f'mass{int(args.mass * 100)}_in_box']:12.3f} |")
    t = results["dino"]["attention"]["trained"]
    print(f"trained beats random init on {t['wins_vs_random_init']:.0%} of images, the centred blob on "
          f"{t['wins_vs_centred_blob']:.0%} (top-{args.mass:.0%} maps)")
    print(f"\nMAE {results['mae']['model']}: PSNR (dB) over hidden pixels, {args.mask_ratio:.0%} random masking:")
    for name, v in results["mae"]["psnr_hidden_db"].items():
        print(f"| {name:28s} | {v:6.2f} |")
    if args.metrics_out:
        out = Path(args.metrics_out)
        out.mkdir(parents=True, exist_ok=True)
        a = results["dino"]["attention"]
        (out / "dino.json").write_text(json.dumps({
            "heldout": f"Tiny-ImageNet val, {len(images)} images", "attention_mass_in_box": a["trained"]["mass_in_box"],
            "attention_top60_mass_in_box": a["trained"][f"mass{int(args.mass * 100)}_in_box"],
            "random_init_top60_mass_in_box": a["random init"][f"mass{int(args.mass * 100)}_in_box"],
            "centred_blob_top60_mass_in_box": a["centred blob"][f"mass{int(args.mass * 100)}_in_box"],
            "box_area": a["uniform (box area)"]["mass_in_box"]}, indent=2))
        (out / "mae.json").write_text(json.dumps({
            "heldout": f"Tiny-ImageNet val, {len(images)} images, mask ratio {args.mask_ratio}",
            **{f"psnr_hidden_db {k}": v for k, v in results["mae"]["psnr_hidden_db"].items()}}, indent=2))
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
