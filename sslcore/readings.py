"""What a run's headline number hides, in a sentence a learner can act on.

The standard readout (weighted kNN on the last stage at the image size) is the one number every run
carries; for some methods it undersells what they learned. :func:`run_notes` says where to look instead,
from the run's own summary.
"""

from __future__ import annotations

from typing import Any, Mapping


def _gain(summary: Mapping[str, Any]) -> float | None:
    top1, init = summary.get("knn_top1"), summary.get("knn_top1_random_init")
    return None if top1 is None or init is None else top1 - init


def run_notes(method: str, dataset: str, summary: Mapping[str, Any]) -> list[str]:
    """Plain-language notes on a finished run's numbers (empty when the headline says it all)."""
    notes = []
    if method == "colorization" and dataset == "shapes":
        notes.append("On shapes every object's colour is drawn independently of its class, by design: colorization "
                     "can only learn colour here, which a class-level kNN has to ignore, so its standard kNN stays "
                     "near random init. It is the one method expected not to gain here; its earlier stages still "
                     "pick up edges and parts (the stage chart).")
    stages, init = summary.get("knn_stages"), summary.get("knn_stages_random_init")
    if stages and init and len(stages) == len(init) > 1:
        gains = [s - i for s, i in zip(stages, init)]
        best = max(range(len(gains)), key=gains.__getitem__)
        if best < len(gains) - 1 and gains[best] - gains[-1] >= 3:
            notes.append(f"Its best features are not at the last stage: stage {best + 1} gains {gains[best]:+.1f} "
                         f"points over random init, the last {gains[-1]:+.1f}. The last stage specialised to the "
                         "task's own labels; the features worth keeping sit earlier.")
    scale = summary.get("knn_train_scale") or {}
    if "top1" in scale and "random_init" in scale:
        trained, gain = scale["top1"] - scale["random_init"], _gain(summary)
        if gain is not None and trained - gain >= 3:
            size = scale.get("protocol", {})
            notes.append(f"This task trained on patches that show objects larger than the images do. Read at that "
                         f"scale (inputs {size.get('image_size', '?')} -> {size.get('input_size', '?')} px) it gains "
                         f"{trained:+.1f} points over random init, against {gain:+.1f} at the image size.")
    if method == "mae" and (_gain(summary) or 0) < 5:
        notes.append("MAE's frozen features move off random init slowly: the paper pre-trains for hundreds of epochs "
                     "and fine-tunes the encoder rather than reading it frozen. Its reconstructions (the picture above, "
                     "and the MAE page) show what it did learn.")
    return notes
