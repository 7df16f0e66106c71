"""Does a ViT's attention find the object? On held-out `shapes` images, whose object masks are known.

Per image, the CLS-to-patch attention of the last block: the share of the patches holding its top
60% of attention mass (DINO's visualisation, Caron et al. 2021 Fig. 3) that lies inside the object's
mask, and the plain share of the whole map inside it. Compared, on the same images: the trained
model's head mean and its best head, a random-init ViT of the same architecture (head mean and best
head), a centred Gaussian blob, and uniform attention (the object's own share of the image). The
best head is the one with the highest mean score on these images, for the trained and the random
model alike (a choice made on the test images, so read it as an upper bound).

The images are drawn with a seed that neither the training split (seed 0) nor the held-out split
of a run (seed 1,000,003) uses.

    python benchmarks/shapes_attention.py RUN_DIR|SHIPPED_NAME [--n 1000] [--mass 0.6] [--block -1] [--json]
        [--metrics-out FILE]   # the headline numbers as JSON, for `sslcore export --metrics FILE`
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sslcore.data import make_shapes
from sslcore.models.load import load_shipped, random_init
from sslcore.runs.saved import from_run
from sslcore.runs.starter import describe_machine
from sslcore.viz.quality import centred_blob, head_attention, head_mask_scores

SEED = 2_000_003


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a DINO run folder (its teacher) or a shipped checkpoint name")
    parser.add_argument("--n", type=int, default=1000, help="held-out images")
    parser.add_argument("--mass", type=float, default=0.6)
    parser.add_argument("--block", type=int, default=-1, help="whose CLS attention (default: the last block's)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--metrics-out", help="write the headline numbers to this JSON file")
    args = parser.parse_args()

    loaded = from_run(args.model) if Path(args.model).is_dir() else load_shipped(args.model)
    size = loaded.image_size or 32
    data = make_shapes(args.n, size, SEED)
    images, masks = data.images.float() / 255, data.masks.numpy()
    vit = loaded.vit
    patch = vit.patch_embed.patch_size[0]
    rand = random_init("vit", {k: loaded.config[k] for k in ("backbone", "image_size") if k in loaded.config}).vit
    trained, random = head_attention(vit, images, args.block), head_attention(rand, images, args.block)
    h, w = trained.shape[-2:]
    blob = np.broadcast_to(centred_blob(h, w, sigma=h / 4), (len(images), 1, h, w))
    rows = {name: head_mask_scores(maps, masks, patch, args.mass)
            for name, maps in (("trained", trained), ("random init", random), ("centred blob", blob))}
    area = float(masks.mean())
    if args.metrics_out:
        top = f"top{int(args.mass * 100)}"
        Path(args.metrics_out).write_text(json.dumps({
            "heldout": f"shapes, {args.n} images at {size} px, seed {SEED}, block {args.block}",
            f"attention_{top}_mass_in_object": rows["trained"]["mean_top"],
            f"best_head_{top}_mass_in_object": rows["trained"]["best_top"],
            f"random_init_{top}_mass_in_object": rows["random init"]["mean_top"],
            f"random_init_best_head_{top}_mass_in_object": rows["random init"]["best_top"],
            f"centred_blob_{top}_mass_in_object": rows["centred blob"]["mean_top"],
            "object_area": area}, indent=2))
    if args.json:
        print(json.dumps({"model": loaded.source, "images": args.n, "size": size, "block": args.block,
                          "object_area": area, **rows}))
        return
    print(f"## Attention on held-out shapes ({args.n} images, {size} px, seed {SEED}, block {args.block}): "
          f"{loaded.source}\n")
    print(f"{time.strftime('%d %B %Y')}, {describe_machine()}. Share of the attention "
          f"inside the object's mask; 'top {args.mass:.0%}': of the patches holding that share of each map.\n")
    print(f"| map | head mean: top {args.mass:.0%} | head mean: plain | best head | best head: top {args.mass:.0%} "
          "| best head: plain |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        head = "" if name == "centred blob" else str(r["best_head"])
        best = ("", "") if name == "centred blob" else (f"{r['best_top']:.3f}", f"{r['best_plain']:.3f}")
        print(f"| {name} | {r['mean_top']:.3f} | {r['mean_plain']:.3f} | {head} | {best[0]} | {best[1]} |")
    print(f"| uniform (the object's area) | {area:.3f} | {area:.3f} |  |  |  |")


if __name__ == "__main__":
    main()
