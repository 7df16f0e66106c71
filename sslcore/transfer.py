"""Pretrain, then transfer: a saved run's backbone on a small labelled set, against the references
that say whether pretraining paid off.

The workflow is the course's chest X-ray case: pretrain on the plentiful unlabelled images, check the
frozen features with a linear probe, fine-tune with the few labels, and compare with the same
network trained from scratch on those labels only. :func:`evaluate_plan` measures all four at each
label fraction with :func:`sslcore.runs.evaluate.evaluate_run`; :func:`reading` turns the numbers
into sentences. When the labelled set is not the kind of image the run trained on, the plan is
cross-domain, and the run is also probed on its own data so the domain gap shows as a number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from sslcore.data import DATASETS, DataError
from sslcore.eval import FineTuneConfig, percent
from sslcore.runs.config import RunConfig
from sslcore.runs.evaluate import evaluate_run

Progress = Callable[[float], None]

# The four ways to use few labels, in the order a table shows them (and ties are named).
APPROACHES: dict[str, str] = {
    "finetune": "pretrained, fine-tuned",
    "probe": "pretrained, probed",
    "scratch": "from scratch",
    "random": "random init, probed",
}
# The same four in a sentence.
SAY: dict[str, str] = {
    "finetune": "fine-tuning the pretrained backbone",
    "probe": "a linear probe on the pretrained features",
    "scratch": "the network trained from scratch",
    "random": "a linear probe on random-init features",
}
PRETRAINED = ("finetune", "probe")
HOME_SHARE = 0.15  # of the progress bar: the same-domain probe (frozen features only) is cheap
DECIMALS = 1  # scores are shown, ranked and compared at one decimal, so the words match the table


def shown(x: float) -> float:
    """A score as the page shows it (one decimal)."""
    return round(x, DECIMALS)


# ---------------------------------------------------------------------------------------------
# the worked example
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseStep:
    title: str
    body: str


XRAY_SITUATION = ("A hospital has **5,000,000 chest X-rays** nobody has annotated, and radiologists have labelled "
                  "**2,000 scans**, each with one of two diagnoses. The goal is a classifier for the two classes.")
XRAY_STEPS: tuple[CaseStep, ...] = (
    CaseStep("1. Pretrain without labels",
             "Train an encoder (a ResNet-style CNN or a ViT) on all five million scans with a self-supervised "
             "objective. Masked-patch reconstruction (MAE) or self-distillation (DINO) are good fits when images "
             "are this plentiful. No radiologist is needed: the encoder picks up what chest X-rays look like, "
             "the anatomy, the normal variation between patients, the marks each scanner leaves."),
    CaseStep("2. Check the features with a linear probe",
             "Freeze the encoder and fit a single linear layer on the 2,000 labelled scans. It costs minutes and "
             "answers one question before any expensive step: do the frozen features already separate the two "
             "diagnoses? A probe near chance (50% for two balanced classes) means pretraining went wrong, for "
             "example a collapse or augmentations that erased what matters, and fine-tuning will not rescue it."),
    CaseStep("3. Fine-tune with the labels",
             "Train the whole network on the 2,000 scans, with a small learning rate for the pretrained encoder "
             "(so it keeps what it learned) and a larger one for the new classification head (which starts from "
             "nothing). This usually gives the best accuracy."),
    CaseStep("4. Compare with training from scratch",
             "The baseline is the same network trained only on the 2,000 labelled scans, starting from random "
             "weights. Pretraining earns its cost only if the fine-tuned (or probed) encoder beats it."),
)
XRAY_WHY = (
    "Why pretraining wins: a network with millions of weights cannot learn what an X-ray looks like from 2,000 "
    "examples. It either memorises them or never finds the subtle patterns. The five million unlabelled scans "
    "hold most of that knowledge, and self-supervised pretraining moves it into the encoder for free. The few "
    "labels then only have to teach the last, task-specific step instead of all of vision from zero. The fewer "
    "the labels, the larger the head start: on ImageNet, self-supervised and supervised training are about even "
    "with every label, while with 1% of the labels (about 13 per class) the pretrained encoder is far ahead."
)
XRAY_EXERCISE = ("Before reading on: how would you use the five million unlabelled scans, and why should that beat "
                 "a CNN trained from scratch on the 2,000 labelled ones? Three or four sentences are enough.")
# The case's pieces and where each one is in the lab's flow (the page's "Your data" tab).
XRAY_IN_THE_LAB: tuple[tuple[str, str], ...] = (
    ("5,000,000 unlabelled X-rays", "the images a run pretrains on (step 1: a run you pick, or a new one on an "
                                    "unlabelled folder)"),
    ("self-supervised pretraining", "any method of the lab: SimCLR, MoCo, BYOL, DINO, MAE, or a pretext task"),
    ("2,000 labelled scans, two classes", "the labelled set of step 2 (shapes, digits, or a folder root/<class>/*) "
                                          "and its number of labelled training images"),
    ("fewer labels than that", "the label fractions: 1% of 2,000 is 20 labelled images"),
    ("linear probe, fine-tuning", "two columns of the result table, both starting from the pretrained backbone"),
    ("a CNN from scratch on the labels", "the from-scratch column: the same network, random weights, trained "
                                         "on the same labels for as many steps as the pretraining run"),
)
XRAY_PITFALL = (
    "The pitfall: pretrain on images like the ones you must classify. An encoder learns the statistics of its "
    "pretraining data, and features learned on one kind of image (internet photos, say) often carry over poorly "
    "to another (grayscale scans, satellite tiles). That is why the five million X-rays matter more here than a "
    "bigger but unrelated collection."
)


# ---------------------------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Domain:
    """A kind of image: an embedded dataset, or a folder on the server."""

    dataset: str
    data_dir: str | None = None

    def describe(self) -> str:
        return f"the folder '{Path(self.data_dir).name}'" if self.dataset == "folder" and self.data_dir else self.dataset

    def same_as(self, other: "Domain") -> bool:
        if self.dataset != other.dataset:
            return False
        if self.dataset != "folder":
            return True
        return (self.data_dir is not None and other.data_dir is not None
                and Path(self.data_dir).expanduser().resolve() == Path(other.data_dir).expanduser().resolve())


def run_config(run_dir: str | Path) -> RunConfig:
    """The config a saved run trained with (its folder's ``config.json``)."""
    return RunConfig.from_dict(json.loads((Path(run_dir) / "config.json").read_text()))


def home_domains(cfg: RunConfig) -> list[Domain]:
    """The kinds of image a run trained on: its dataset, and for a folder also its labelled eval folder."""
    out = [Domain(cfg.dataset, cfg.data_dir if cfg.dataset == "folder" else None)]
    if cfg.dataset == "folder" and cfg.eval_dir:
        out.append(Domain("folder", cfg.eval_dir))
    return out


def is_cross_domain(cfg: RunConfig, probe: Domain) -> bool:
    """Whether ``probe`` is another kind of image than the run trained on."""
    return not any(probe.same_as(d) for d in home_domains(cfg))


@dataclass(frozen=True)
class TransferPlan:
    """A pretrained run, a small labelled set, and how many of its labels to use.

    Attributes:
        run_dir: the saved run whose backbone is transferred.
        dataset, data_dir, eval_dir: the labelled set ("shapes", "digits", or "folder" with
            ``root/<class>/*``, or with train/ and test/; ``eval_dir`` a separate labelled test folder).
        fractions: label fractions of the labelled training images, each in (0, 1].
        labelled: at most this many labelled training images (the X-ray case has 2,000).
        test: at most this many held-out test images.
        finetune: the fine-tuning recipe (SimCLR's: small encoder lr, large head lr).
        same_domain: when cross-domain, also probe the run on its own data for comparison.
    """

    run_dir: str
    dataset: str = "shapes"
    data_dir: str | None = None
    eval_dir: str | None = None
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    labelled: int = 2000
    test: int = 1000
    finetune: FineTuneConfig = FineTuneConfig()
    same_domain: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")
        if self.dataset == "folder" and not self.data_dir:
            raise ValueError("a folder plan needs the labelled folder (data_dir)")
        if not self.fractions or not all(0 < f <= 1 for f in self.fractions):
            raise ValueError(f"label fractions must be at least one value in (0, 1], got {self.fractions}")
        if self.labelled < 2 or self.test < 1:
            raise ValueError(f"need at least 2 labelled and 1 test image, got {self.labelled} and {self.test}")
        object.__setattr__(self, "fractions", tuple(sorted({float(f) for f in self.fractions})))

    @property
    def probe(self) -> Domain:
        return Domain(self.dataset, self.data_dir if self.dataset == "folder" else None)

    @property
    def cross_domain(self) -> bool:
        return is_cross_domain(run_config(self.run_dir), self.probe)


# ---------------------------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransferRow:
    """One top-1 (in %) of one approach at one label fraction."""

    approach: str  # a key of APPROACHES
    fraction: float
    labels: int  # labelled images it learned from
    top1: float
    protocol: str  # how it was measured, in words
    steps: int | None = None  # training steps (fine-tuning, from scratch); None for probes

    @property
    def name(self) -> str:
        return APPROACHES[self.approach]


@dataclass(frozen=True)
class TransferResult:
    """Every approach at every fraction on the labelled set; ``home`` the run's own data (cross-domain only)."""

    plan: TransferPlan
    pretrained_on: str
    probed_on: str
    cross_domain: bool
    steps: int | None  # the run's training steps: the from-scratch network trains for as many
    rows: tuple[TransferRow, ...]
    home: tuple[TransferRow, ...] = ()
    home_note: str = ""  # why there is no same-domain comparison, when there is none
    raw: dict[str, Any] = field(default_factory=dict, compare=False)  # evaluate_run's answer

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(sorted({r.fraction for r in self.rows}))

    def get(self, approach: str, fraction: float, home: bool = False) -> TransferRow | None:
        return next((r for r in (self.home if home else self.rows)
                     if r.approach == approach and r.fraction == fraction), None)

    def top1(self, approach: str, fraction: float, home: bool = False) -> float | None:
        """The score as shown (one decimal), so sums and differences match the table."""
        row = self.get(approach, fraction, home)
        return None if row is None else shown(row.top1)

    def labels(self, fraction: float, home: bool = False) -> int:
        return next(r.labels for r in (self.home if home else self.rows) if r.fraction == fraction)

    def ranking(self, fraction: float) -> list[TransferRow]:
        """The approaches at ``fraction``, best first (ties keep APPROACHES' order)."""
        order = list(APPROACHES)
        found = [r for r in self.rows if r.fraction == fraction]
        return sorted(found, key=lambda r: (-shown(r.top1), order.index(r.approach)))

    def best(self, fraction: float) -> list[str]:
        """The approach (or the approaches tied at one decimal) with the highest top-1 at ``fraction``."""
        ranked = self.ranking(fraction)
        return [r.approach for r in ranked if shown(r.top1) == shown(ranked[0].top1)]

    def table(self) -> list[dict[str, Any]]:
        """One row per fraction: its label count, a column per approach, and the winner."""
        out = []
        for f in self.fractions:
            row: dict[str, Any] = {"labels": f"{percent(f)} ({self.labels(f)} images)"}
            for key, name in APPROACHES.items():
                value = self.top1(key, f)
                row[f"{name} %"] = None if value is None else shown(value)
            row["best"] = " = ".join(APPROACHES[a] for a in self.best(f))
            out.append(row)
        return out

    def domain_table(self) -> list[dict[str, Any]]:
        """Frozen-feature gains over random init, on the run's own data beside the labelled set."""
        out = []
        for f in self.fractions:
            for home, where in ((True, self.pretrained_on), (False, self.probed_on)):
                probe, random = self.top1("probe", f, home), self.top1("random", f, home)
                if probe is None or random is None:
                    continue
                out.append({"labels": f"{percent(f)} ({self.labels(f, home)} images)", "data": where,
                            "linear probe %": probe, "random init %": random,
                            "gain (points)": shown(probe - random)})
        return out


def _rows(scores: dict[str, dict[str, dict[str, Any]]]) -> tuple[TransferRow, ...]:
    """evaluate_run's ``scores`` ({model: {name: score}}) as rows of the four approaches."""
    which = {("linear", "run"): "probe", ("finetune", "run"): "finetune", ("supervised", "supervised"): "scratch",
             ("linear", "random init"): "random"}
    rows = []
    for by_name in scores.values():
        for s in by_name.values():
            approach = which.get((s["metric"], s["model"]))
            if approach is not None:
                steps = s["protocol"].get("steps")
                rows.append(TransferRow(approach, float(s["fraction"]), int(s["protocol"]["train_size"]),
                                        float(s["top1"]), s["describe"], None if steps is None else int(steps)))
    order = list(APPROACHES)
    return tuple(sorted(rows, key=lambda r: (r.fraction, order.index(r.approach))))


def _home_source(cfg: RunConfig) -> tuple[str, str | None, str | None] | None:
    """Where the run's own labelled images are: (dataset, data_dir, eval_dir), or None."""
    if cfg.dataset != "folder":
        return cfg.dataset, None, None
    if cfg.eval_dir:  # the labelled folder its kNN monitor used (split 80/20 for a probe)
        return "folder", cfg.eval_dir, None
    return ("folder", cfg.data_dir, None) if cfg.data_dir else None


def evaluate_plan(plan: TransferPlan, progress: Progress | None = None) -> TransferResult:
    """Linear probe and fine-tuning of the run's backbone, a supervised network from scratch and a
    random-init probe, at each of ``plan.fractions`` of the labelled set; cross-domain plans also
    probe the run's own data (frozen features only) when it has labels."""
    cfg = run_config(plan.run_dir)
    cross = is_cross_domain(cfg, plan.probe)
    home_needed = cross and plan.same_domain
    share = 1.0 - HOME_SHARE if home_needed else 1.0

    def report(f: float) -> None:
        if progress is not None:
            progress(min(1.0, f))

    out = evaluate_run(plan.run_dir, plan.dataset, data_dir=plan.data_dir, eval_dir=plan.eval_dir, seed=plan.seed,
                       bank=plan.labelled, test=plan.test, knn=False, label_fractions=plan.fractions,
                       random_init=True, supervised=True, finetune=plan.finetune,
                       progress=lambda f: report(share * f))
    home: tuple[TransferRow, ...] = ()
    note = ""
    if home_needed:
        source = _home_source(cfg)
        if source is None:
            note = f"The run trained on {home_domains(cfg)[0].describe()}, which has no labels to probe."
        else:
            dataset, data_dir, eval_dir = source
            try:
                own = evaluate_run(plan.run_dir, dataset, data_dir=data_dir, eval_dir=eval_dir, seed=plan.seed,
                                   bank=plan.labelled, test=plan.test, knn=False, label_fractions=plan.fractions,
                                   random_init=True, progress=lambda f: report(share + HOME_SHARE * f))
                home = _rows(own["scores"])
            except (DataError, ValueError, OSError, RuntimeError) as e:
                note = f"The run's own data could not be probed for comparison ({e})."
    report(1.0)
    return TransferResult(plan=plan, pretrained_on=home_domains(cfg)[0].describe(), probed_on=plan.probe.describe(),
                          cross_domain=cross, steps=out.get("steps"), rows=_rows(out["scores"]), home=home,
                          home_note=note, raw=out)


# ---------------------------------------------------------------------------------------------
# the numbers in words
# ---------------------------------------------------------------------------------------------
def _names(approaches: Sequence[str]) -> str:
    names = [SAY[a] for a in approaches]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _percents(fractions: Sequence[float]) -> str:
    names = [percent(f) for f in fractions]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _signed(x: float) -> str:
    return f"{x:+.1f}"


def _fraction_sentence(result: TransferResult, f: float) -> str:
    ranked = result.ranking(f)
    best = result.best(f)
    head = f"With {percent(f)} of the labels ({result.labels(f)} images): "
    top, score = ranked[0], shown(ranked[0].top1)
    if len(best) == len(ranked):
        return head + f"all {len(ranked)} approaches score the same, {score:.1f}%."
    if len(best) > 1:
        text = f"{_names(best)} tie for best at {score:.1f}%"
    else:
        text = f"{SAY[top.approach]} is best at {score:.1f}%"
    runner = ranked[len(best)]
    text += f", {score - shown(runner.top1):.1f} points ahead of {SAY[runner.approach]} ({shown(runner.top1):.1f}%)"
    scratch = result.top1("scratch", f)
    if scratch is not None and "scratch" not in best and runner.approach != "scratch":
        text += f" and {score - scratch:.1f} points ahead of {SAY['scratch']} ({scratch:.1f}%)"
    return head + text + "."


def _pretrained_best(result: TransferResult, f: float, home: bool = False) -> float | None:
    values = [v for v in (result.top1(a, f, home) for a in PRETRAINED) if v is not None]
    return max(values) if values else None


def reading(result: TransferResult) -> list[str]:
    """Plain-language sentences on ``result``: the winner at each label count and by how much, whether
    the frozen features beat random ones, how the lead over training from scratch moves with more
    labels, and the domain gap when the labelled set is another kind of image than the run's."""
    out = []
    if result.cross_domain:
        out.append(f"Cross-domain: the backbone was pretrained on {result.pretrained_on} and is tested on "
                   f"{result.probed_on}, a different kind of image. Expect weaker transfer than on its own data.")
    fractions = result.fractions
    out += [_fraction_sentence(result, f) for f in fractions]

    gains = [(f, result.top1("probe", f) - result.top1("random", f)) for f in fractions
             if result.top1("probe", f) is not None and result.top1("random", f) is not None]
    if gains:
        low, high = min(g for _, g in gains), max(g for _, g in gains)
        span = f"{_signed(low)} points" if shown(low) == shown(high) else f"{_signed(low)} to {_signed(high)} points"
        if high > 1.0:
            out.append(f"Frozen, the pretrained features score {span} against the same network at random init: "
                       "pretraining learned something these labels can use.")
        else:
            out.append(f"Frozen, the pretrained features do no better than random ones ({span}): what pretraining "
                       f"learned does not help on {result.probed_on}.")

    leads = [(f, _pretrained_best(result, f), result.top1("scratch", f)) for f in fractions]
    leads = [(f, p - s) for f, p, s in leads if p is not None and s is not None]
    if len(leads) >= 2:
        (f0, g0), (f1, g1) = leads[0], leads[-1]
        trend = (f"The best pretrained score minus training from scratch: {_signed(g0)} points with "
                 f"{result.labels(f0)} labelled images, {_signed(g1)} with {result.labels(f1)}")
        if max(shown(g) for _, g in leads) <= 0:
            trend += (". Training from scratch is never behind here: this pretraining gives these labels no head "
                      "start (a short run, or one on another kind of image, often does not).")
        elif shown(g0) > shown(g1):
            trend += ". The head start is largest when labels are scarce, as the X-ray case predicts."
        elif shown(g1) > shown(g0):
            trend += ". Here the head start grows with more labels: with the fewest labels even good features " \
                     "leave the classifier guessing."
        else:
            trend += ". The head start is the same at every label count."
        out.append(trend)
    elif leads:
        f, g = leads[0]
        out.append(f"With {result.labels(f)} labelled images the pretrained backbone is {abs(g):.1f} points "
                   f"{'ahead of' if g >= 0 else 'behind'} training from scratch.")

    behind = [f for f in fractions if result.top1("finetune", f) is not None and result.top1("probe", f) is not None
              and result.top1("finetune", f) < result.top1("probe", f)]
    if behind:
        tuned, scratch = result.get("finetune", behind[-1]), result.get("scratch", behind[-1])
        budget = f"{tuned.steps} steps" if tuned.steps else "a short schedule"
        versus = f", against {scratch.steps} for the network from scratch" if scratch and scratch.steps else ""
        out.append(f"Fine-tuning scored below the frozen linear probe with {_percents(behind)} of the labels. The "
                   f"probe's classifier is solved exactly, while fine-tuning trains a new head and the encoder with "
                   f"{budget}{versus} (at {percent(behind[-1])}): more fine-tuning epochs usually close the gap.")

    if result.cross_domain:
        common = [f for f in fractions if result.top1("probe", f, True) is not None]
        if common:
            f = common[-1]
            home_gain = result.top1("probe", f, True) - result.top1("random", f, True)
            away_gain = result.top1("probe", f) - result.top1("random", f)
            text = (f"Same backbone, same {percent(f)} of the labels: on its own data ({result.pretrained_on}) the "
                    f"linear probe gains {_signed(home_gain)} points over random init, on {result.probed_on} "
                    f"{_signed(away_gain)}.")
            if shown(home_gain) > shown(away_gain):
                text += (" The smaller gain away from home is the domain gap in numbers: pretrain on unlabelled "
                         "images like the ones you need to classify.")
            else:
                text += (" Here the features carried over at least as well: the two kinds of image share enough "
                         "simple structure (edges, blobs, contrast) for this backbone.")
            out.append(text)
        elif result.home_note:
            out.append(result.home_note)
    return out
