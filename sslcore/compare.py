"""Comparing runs fairly: score tables with their protocols, aligned curves, shared embeddings, races.

A number means little without the protocol that produced it, and two numbers compare only when
their runs saw the same data, budget, seed and backbone. This module turns run records into a
table where every score sits beside its protocol, and flags each property on which a run differs
from the others (Lucic et al. 2018 and Musgrave et al. 2020 showed how often unequal budgets and
protocols, not methods, explain reported gaps).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable, NamedTuple, Sequence

import torch
from torch import Tensor

from sslcore.data import load_folder, load_split, stratified_split
from sslcore.eval import extract_features
from sslcore.methods import METHODS
from sslcore.runs import ACTIVE, RunConfig, RunRecord, RunStore
from sslcore.runs.config import DEFAULT_VIT, backbones_for
from sslcore.runs.dispatcher import ensure_dispatcher
from sslcore.runs.saved import load_run
from sslcore.runs.scheduler import OPERATOR, Actor, submit
from sslcore.viz.projection import pca

Metrics = dict[str, tuple[list[int], list[float]]]

RACE_PREFIX = "race-"

# Properties that make scores incomparable outright (any other difference makes a comparison unequal).
INCOMPARABLE = ("dataset", "budget kind", "image size")
_SCORE_KEYS = ("top1", "accuracy", "value", "score")


# --------------------------------------------------------------------------- scores and protocols


class Measured(NamedTuple):
    value: float
    protocol: dict[str, Any] | None
    protocol_key: str  # where the protocol sits in the summary; scores sharing one share this key


def scores(summary: dict[str, Any]) -> dict[str, Measured]:
    """Every score in a run summary with the protocol that produced it, by dotted name.

    Recognised shapes: a number ``a_b_c`` with a sibling protocol dict named after it or after one
    of its prefixes (``a_b_c_protocol``, ``a_b_protocol``, ``a_protocol``: so ``knn_top1`` and
    ``knn_top1_random_init`` both take ``knn_protocol``); a dict holding a number under ``top1``,
    ``accuracy``, ``value`` or ``score`` (and optionally ``protocol``), also nested, e.g.
    ``{"linear_probe": {"1%": {"top1": 41.0, "protocol": {...}}}}`` gives ``linear_probe.1%``; a
    ``random_init`` number beside ``top1`` gives ``<name>.random_init`` with the same protocol.
    Numbers without a protocol (loss, steps, throughput) are not scores.
    """
    out: dict[str, Measured] = {}

    def walk(node: dict[str, Any], prefix: str, depth: int) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if _is_number(value):
                parts = key.split("_")
                candidates = ("_".join(parts[:i]) + "_protocol" for i in range(len(parts), 0, -1))
                source = next((c for c in candidates if isinstance(node.get(c), dict)), None)
                if source is not None:
                    out[name] = Measured(float(value), node[source], prefix + source)
            elif isinstance(value, dict) and not key.endswith("protocol") and depth < 3:
                hit = next((k for k in _SCORE_KEYS if _is_number(value.get(k))), None)
                if hit is not None:
                    protocol = value.get("protocol")
                    protocol = protocol if isinstance(protocol, dict) else None
                    out[name] = Measured(float(value[hit]), protocol, f"{name}.protocol")
                    if _is_number(value.get("random_init")):  # its reference, measured the same way
                        out[f"{name}.random_init"] = Measured(float(value["random_init"]), protocol, f"{name}.protocol")
                else:
                    walk(value, f"{name}.", depth + 1)

    walk(summary, "", 0)
    return out


def describe_protocol(protocol: dict[str, Any] | None) -> str:
    """``k=20, t=0.1, bank_size=5000`` (every field, in its stored order); '' when there is none."""
    if not protocol:
        return ""
    return ", ".join(f"{k}={v}" for k, v in protocol.items())


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# --------------------------------------------------------------------------- fairness


def budget_kind(config: dict[str, Any]) -> str:
    steps, seconds = config.get("steps"), config.get("max_seconds")
    if steps is not None and seconds is not None:
        return "steps or seconds"
    return "steps" if steps is not None else "seconds"


def budget_text(config: dict[str, Any]) -> str:
    parts = []
    if config.get("steps") is not None:
        parts.append(f"{config['steps']} steps")
    if config.get("max_seconds") is not None:
        parts.append(f"{config['max_seconds']:g} s")
    return " or ".join(parts)


def _data_text(c: dict[str, Any]) -> str:
    return c["dataset"] + (f" ({c['data_dir']})" if c.get("data_dir") else "")


# Property -> how to read it from a record. Equal values mean the runs share that condition.
FAIRNESS_PROPERTIES: dict[str, Callable[[RunRecord], Any]] = {
    "dataset": lambda r: _data_text(r.config),
    "eval set": lambda r: r.config.get("eval_dir") or "default split",
    "training images": lambda r: r.config.get("train_size") or "all",
    "image size": lambda r: r.config.get("image_size"),
    "budget kind": lambda r: budget_kind(r.config),
    "budget": lambda r: budget_text(r.config),
    "seed": lambda r: r.config.get("seed"),
    "backbone": lambda r: r.config.get("backbone"),
    "batch size": lambda r: r.config.get("batch_size"),
    "device": lambda r: r.summary.get("device", r.config.get("device")),
}


@dataclass(frozen=True)
class Flag:
    """A property on which one run differs from the others."""

    property: str
    severity: str  # "incomparable" (scores do not compare) or "differs" (an unequal comparison)
    value: str
    others: tuple[str, ...]  # the other runs' values

    def __str__(self) -> str:
        return f"{self.severity}: {self.property} {self.value} (others: {', '.join(self.others)})"


def fairness_flags(records: Sequence[RunRecord]) -> dict[str, list[Flag]]:
    """For each run id, the properties on which it differs from the other runs.

    The reference value of a property is the one most runs share; on a tie there is no majority
    and every run is flagged. Score protocols are compared too: a kNN with another k, T or bank
    size, or a probe with another protocol, is a different measurement. Properties in
    :data:`INCOMPARABLE` and protocols are ``"incomparable"``, the rest ``"differs"``.
    """
    flags: dict[str, list[Flag]] = {r.id: [] for r in records}
    if len(records) < 2:
        return flags
    columns: dict[str, dict[str, Any]] = {
        name: {r.id: read(r) for r in records} for name, read in FAIRNESS_PROPERTIES.items()}
    for r in records:  # a protocol only matters where the score exists
        for m in scores(r.summary).values():
            columns.setdefault(m.protocol_key, {})[r.id] = describe_protocol(m.protocol)
    for name, values in columns.items():
        counts = Counter(values.values()).most_common()
        if len(counts) < 2:
            continue
        majority = counts[0][0] if counts[0][1] > counts[1][1] else None
        severity = "incomparable" if name in INCOMPARABLE or name not in FAIRNESS_PROPERTIES else "differs"
        for run_id, value in values.items():
            if value != majority:
                others = tuple(sorted({str(v) for k, v in values.items() if k != run_id and v != value}))
                flags[run_id].append(Flag(name, severity, str(value), others))
    return flags


def differences(flags: dict[str, list[Flag]]) -> dict[str, list[str]]:
    """``severity -> properties`` that differ anywhere among the compared runs, for a banner."""
    out: dict[str, list[str]] = {}
    for run_flags in flags.values():
        for f in run_flags:
            if f.property not in out.setdefault(f.severity, []):
                out[f.severity].append(f.property)
    return out


def comparison_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One table row per run: identity, protocol, every score beside its protocol, fairness flags."""
    flags = fairness_flags(records)
    all_scores = {r.id: scores(r.summary) for r in records}
    score_names = sorted({n for s in all_scores.values() for n in s} - {"knn_top1", "knn_top1_random_init"})
    rows = []
    for r in records:
        c, s, sc = r.config, r.summary, all_scores[r.id]
        knn = s.get("knn_protocol") or {}
        row: dict[str, Any] = {
            "run": r.id, "method": r.method, "status": r.status, "fairness": "; ".join(map(str, flags[r.id])) or "ok",
            "dataset": _data_text(c),
            "budget": budget_text(c), "steps": s.get("steps"), "seconds": s.get("seconds"),
            "backbone": c.get("backbone"), "batch": c.get("batch_size"), "image size": c.get("image_size"),
            "seed": c.get("seed"),
            "kNN top-1 %": _round(s.get("knn_top1")),
            "random init %": _round(s.get("knn_top1_random_init")),
            "k": knn.get("k"), "T": knn.get("t"), "bank": knn.get("bank_size"), "test": knn.get("test_size"),
        }
        for name in score_names:
            m = sc.get(name)
            row[name] = None if m is None else _round(m.value)
            row[f"{name} protocol"] = "" if m is None else describe_protocol(m.protocol)
        rows.append(row)
    return rows


def _round(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


# --------------------------------------------------------------------------- curves


def align_curves(metrics: dict[str, Metrics], times: dict[str, dict[int, float]], name: str,
                 x: str = "step") -> dict[str, tuple[list[float], list[float]]]:
    """Metric ``name`` of several runs on a shared x axis: ``"step"`` or training ``"seconds"``.

    Args:
        metrics: label -> that run's metrics (``RunStore.metrics``).
        times: label -> ``step -> seconds`` (``RunStore.step_seconds``); used when x is seconds.
    Returns:
        label -> (xs, ys) for the runs that logged ``name``; NaN values are dropped.
    """
    if x not in ("step", "seconds"):
        raise ValueError(f"x must be 'step' or 'seconds', got {x!r}")
    out = {}
    for label, m in metrics.items():
        if name not in m:
            continue
        pairs = [(s, v) for s, v in zip(*m[name]) if v == v]
        if x == "seconds":
            clock = times.get(label, {})
            pairs = [(clock[s], v) for s, v in pairs if s in clock]
        if pairs:
            xs, ys = zip(*pairs)
            out[label] = (list(map(float, xs)), list(ys))
    return out


# --------------------------------------------------------------------------- embeddings


@dataclass(frozen=True)
class SharedEmbedding:
    """Every run's features of the same labelled images, projected to 2-D."""

    labels: Tensor  # (N,)
    classes: tuple[str, ...]
    coords: dict[str, Tensor]  # run id -> (N, 2)


def embed_runs(store: RunStore, run_ids: Sequence[str], dataset: str, data_dir: str | None = None,
               eval_dir: str | None = None, n: int = 500, seed: int = 0) -> SharedEmbedding:
    """PCA of each run's backbone features on one class-stratified sample of labelled held-out images.

    The images are ``eval_dir`` when given (a labelled folder, as the kNN monitor uses it), else
    ``dataset``'s test split. Each run sees them at its own training size; the sample (indices)
    is the same for all.
    """
    by_size: dict[int, Any] = {}
    index = labels = None
    coords = {}
    for run_id in run_ids:
        size = store.get(run_id).config["image_size"]
        if size not in by_size:
            by_size[size] = (load_folder(eval_dir, size) if eval_dir else
                             load_split(dataset, "test", size, data_dir=data_dir, seed=seed))
        data = by_size[size]
        if data.labels is None:
            raise ValueError(f"{dataset} has no labels to colour an embedding by")
        if index is None:
            index = stratified_split(data.labels, min(1.0, n / len(data)), seed)[0]
            labels = data.labels[index]
        elif not torch.equal(data.labels[index], labels):
            raise ValueError(f"{dataset} gives different labels at image size {size}")
        method, _ = load_run(store.run_dir(run_id))
        coords[run_id] = pca(extract_features(method.backbone, data.images[index]))
    return SharedEmbedding(labels, next(iter(by_size.values())).classes, coords)


# --------------------------------------------------------------------------- races


def race_configs(methods: Sequence[str], base: RunConfig) -> list[RunConfig]:
    """One config per method on ``base``'s data, backbone, budget and seed (``base.options`` are
    dropped: every method has its own option fields, so each races with its defaults).

    A method that needs a ViT (:data:`~sslcore.runs.config.VIT_ONLY_METHODS`) gets
    :data:`~sslcore.runs.config.DEFAULT_VIT` when ``base`` has none; the comparison table then flags
    the backbone as a difference.
    """
    if not methods:
        raise ValueError("a race needs at least one method")
    if len(set(methods)) != len(methods):
        raise ValueError(f"each method races once, got {list(methods)}")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    out = []
    for m in methods:
        backbone = base.backbone
        if backbone not in backbones_for(m):
            backbone = DEFAULT_VIT
        out.append(replace(base, method=m, backbone=backbone, options={}))
    return out


def launch_race(configs: Sequence[RunConfig], store: RunStore, actor: Actor = OPERATOR,
                max_queued: int | None = None) -> tuple[str, list[str]]:
    """Queue a race: one group id for all its runs; returns (group id, run ids).

    The queue's slots decide how they train: one after another on a CPU with one slot (each with
    the whole machine, so their time budgets mean the same), side by side where there are more.
    """
    group_id = f"{RACE_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    run_ids = submit(store, configs, actor, group_id=group_id, max_queued=max_queued)
    ensure_dispatcher(store)
    return group_id, run_ids


@dataclass(frozen=True)
class Race:
    group_id: str
    created: float
    runs: tuple[RunRecord, ...]  # in launch order

    @property
    def active(self) -> bool:
        return any(r.status in ACTIVE for r in self.runs)

    def describe(self) -> str:
        first = self.runs[0]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))
        status = "running" if self.active else "done"
        return (f"{when} · {', '.join(r.method for r in self.runs)} on {first.dataset}, "
                f"{budget_text(first.config)} · {status}")


def races(records: Sequence[RunRecord]) -> list[Race]:
    """Past and current races among ``records`` (runs whose group id starts with ``race-``), newest first."""
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.group_id.startswith(RACE_PREFIX):
            groups.setdefault(r.group_id, []).append(r)
    out = [Race(g, min(r.created for r in rs), tuple(sorted(rs, key=lambda r: (r.created, r.id))))
           for g, rs in groups.items()]
    return sorted(out, key=lambda race: race.created, reverse=True)


@dataclass(frozen=True)
class Lane:
    """One run's progress in a race, from the store's snapshot."""

    run_id: str
    method: str
    backbone: str
    status: str
    step: int
    seconds: float
    progress: float  # in [0, 1]: the larger of the step and time fractions of the budget
    knn: float | None
    knn_random_init: float | None

    def describe(self) -> str:
        parts = [self.status, f"step {self.step}", f"{self.seconds:.0f} s"]
        if self.knn is not None:
            base = "" if self.knn_random_init is None else f" (random init {self.knn_random_init:.1f}%)"
            parts.append(f"kNN {self.knn:.1f}%{base}")
        return " · ".join(parts)


def lane(record: RunRecord, metrics: Metrics, times: dict[int, float]) -> Lane:
    """Where ``record`` stands: step, training seconds, fraction of its budget, latest kNN."""
    steps = metrics.get("loss", ([], []))[0]
    step = steps[-1] if steps else 0
    seconds = times.get(step, 0.0)
    c = record.config
    fractions = [0.0]
    if c.get("steps"):
        fractions.append(step / c["steps"])
    if c.get("max_seconds"):
        fractions.append(seconds / c["max_seconds"])
    progress = 1.0 if record.status == "finished" else min(1.0, max(fractions))
    knn_values = [v for v in metrics.get("knn_top1", ([], []))[1] if v == v]
    return Lane(record.id, record.method, record.backbone, record.status, step, seconds, progress,
                knn_values[-1] if knn_values else None, record.summary.get("knn_top1_random_init"))
