"""The collapse lab: take away the device that keeps a method from collapsing, and train the broken and the
intact variant side by side on the same data, budget and seed.

A joint-embedding method can always lower its loss by mapping every image to the same point (complete
collapse) or onto a few directions (dimensional collapse, Jing et al. 2022). Each method has a device
against it: SimCLR's and MoCo's negatives (with a temperature that weights the hard ones), BYOL's
predictor and slow target (Grill et al. 2020; Chen & He 2021), DINO's centring and sharpening, which
fail in opposite directions without each other (Caron et al. 2021, sec. 5.3). The live signals show it:

- ``collapse_std``: the per-dimension std of L2-normalised embeddings, about 1/sqrt(d) when they spread
  and 0 when every image gives the same embedding (Grill et al. 2020's monitor);
- ``effective_rank``: how many directions the batch's embeddings use (Roy & Vetterli 2007); near 1
  when they lie on one line. Scale-free, so it misses a complete collapse that std catches, and it is
  the signal for MoCo and BYOL, whose heads end in batch norm: that keeps every dimension's spread up,
  so they collapse onto a few directions rather than to a point;
- ``teacher_entropy`` (DINO): near 0 when one prototype wins every image, near ln K when the teacher
  says nothing (uniform).
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from sslcore.runs import RunConfig, RunRecord

GROUP_PREFIX = "collapse-"
Metrics = Mapping[str, tuple[Sequence[int], Sequence[float]]]


@dataclass(frozen=True)
class Ablation:
    """One device taken away: the broken variant's method options, and how its collapse shows."""

    key: str
    method: str
    title: str
    options: dict[str, Any]
    removes: str  # the anti-collapse device, in plain words
    expect: str  # what the collapse looks like
    signal: str  # the metric that shows it
    below: float | None = None  # collapsed when the signal ends below this...
    above: float | None = None  # ...or above this (a fraction of ln K for the teacher's entropy)
    steps: int = 300  # the short run that shows it on ``shapes``
    # Thresholds measured in that run (seed 0, 2-core AMD EPYC, December 2026), broken vs intact over the last
    # 20 steps: SimCLR std 0.0004 vs 0.072; MoCo rank 4.5 vs 14.6; BYOL rank 7.2 (no predictor) and 5.5 (online
    # target) vs 10.5; DINO entropy share 0.000 (no centring) and 0.9996 (no sharpening) vs 0.968.

    def threshold_text(self) -> str:
        if self.below is not None:
            return f"{SIGNALS[self.signal]} below {self.below:g}"
        return f"{SIGNALS[self.signal]} above {self.above:g}"


SIGNALS = {"collapse_std": "std of the normalised embeddings", "effective_rank": "effective rank of the embeddings",
           "teacher_entropy_share": "teacher entropy as a share of ln K"}

ABLATIONS: tuple[Ablation, ...] = (
    Ablation("simclr-no-negatives", "simclr", "SimCLR without negatives", {"negatives": False},
             "the negatives: every other image of the batch pushed away",
             "nothing keeps images apart, so all of them land on one point", "collapse_std", below=0.02),
    Ablation("moco-no-negatives", "moco", "MoCo without negatives", {"negatives": False},
             "the queue of negatives from earlier batches",
             "queries only align with their keys, and the embeddings squeeze onto a few directions (the head's "
             "batch norm keeps them off a single point)", "effective_rank", below=8.5),
    Ablation("byol-no-predictor", "byol", "BYOL without its predictor", {"predictor": False},
             "the predictor: the online network must predict the target, not copy it",
             "online and target agree most easily when images give the same output: the embeddings squeeze onto a "
             "few directions", "effective_rank", below=8.5),
    Ablation("byol-online-target", "byol", "BYOL with the online network as its own target", {"target": "online"},
             "the slow (EMA) target: it changes too slowly to chase",
             "the network chases itself onto a few directions", "effective_rank", below=8.5),
    Ablation("dino-no-centring", "dino", "DINO without centring", {"centering": "none"},
             "centring: subtracting the teacher's running mean so no prototype can win every image",
             "one prototype wins every image: the teacher's entropy falls to 0", "teacher_entropy_share", below=0.1),
    Ablation("dino-no-sharpening", "dino", "DINO without sharpening", {"teacher_temp": 0.1, "warmup_teacher_temp": 0.1},
             "sharpening: a teacher temperature below the student's",
             "the centred teacher says the same uniform thing for every image: its entropy rises to ln K",
             "teacher_entropy_share", above=0.99),
)
BY_KEY = {a.key: a for a in ABLATIONS}


def lab_configs(ablation: Ablation, base: RunConfig) -> tuple[RunConfig, RunConfig]:
    """(intact, broken): the same data, budget, seed and backbone; only the device differs."""
    intact = replace(base, method=ablation.method, options={}, steps=ablation.steps, max_seconds=None)
    return intact, replace(intact, options=dict(ablation.options))


def new_group(ablation: Ablation) -> str:
    return f"{GROUP_PREFIX}{ablation.key}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def ablation_of(group_id: str) -> Ablation | None:
    """The ablation a collapse-lab group tested, from its id."""
    return next((a for a in ABLATIONS if group_id.startswith(f"{GROUP_PREFIX}{a.key}-")), None)


def signal_series(ablation: Ablation, metrics: Metrics) -> tuple[list[int], list[float]]:
    """The ablation's signal over a run's steps (the teacher's entropy as a share of ln K)."""
    if ablation.signal == "teacher_entropy_share":
        steps, values = metrics.get("teacher_entropy", ([], []))
        k = _dino_k(ablation)
        return list(steps), [v / math.log(k) for v in values]
    steps, values = metrics.get(ablation.signal, ([], []))
    return list(steps), list(values)


def _dino_k(ablation: Ablation) -> int:
    from sslcore.methods import METHODS

    return METHODS[ablation.method].Config().out_dim


@dataclass(frozen=True)
class Verdict:
    collapsed: bool | None  # None: too early to tell
    value: float | None  # the signal's mean over the latest steps
    text: str


def verdict(ablation: Ablation, metrics: Metrics, window: int = 20) -> Verdict:
    """Whether a run collapsed, read from the mean of its signal over the latest ``window`` steps."""
    steps, values = signal_series(ablation, metrics)
    values = [v for v in values[-window:] if v == v]
    if len(values) < min(window, 5):
        return Verdict(None, None, "Too early to tell: a few more steps.")
    value = sum(values) / len(values)
    collapsed = value < ablation.below if ablation.below is not None else value > ablation.above
    name = SIGNALS[ablation.signal]
    if collapsed:
        return Verdict(True, value, f"Collapsed: the {name} is {value:.3g} ({ablation.threshold_text()} means "
                                    f"collapse). {ablation.expect[0].upper()}{ablation.expect[1:]}.")
    return Verdict(False, value, f"Not collapsed: the {name} is {value:.3g} (collapse: {ablation.threshold_text()}); "
                                 "the embeddings still tell images apart.")


def is_broken(record: RunRecord, ablation: Ablation) -> bool:
    """Whether ``record`` is the broken variant of ``ablation`` (the intact one has no options)."""
    return all(record.config.get("options", {}).get(k) == v for k, v in ablation.options.items())
