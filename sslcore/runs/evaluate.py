"""Scores of a saved run: the monitor's kNN protocol, linear probes with few labels, and their references."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from sslcore.augment import recipe
from sslcore.eval import EvalPlan, FineTuneConfig, Reference, evaluate, score_table, scores_json
from sslcore.methods.base import Method
from sslcore.runs.build import build_method, load_data, make_evaluator
from sslcore.runs.config import RunConfig
from sslcore.runs.saved import load_run
from sslcore.stages import knn_by_stage


def trained_steps(run_dir: str | Path, cfg: RunConfig) -> int | None:
    """The steps a saved run trained for: its summary's (time-budgeted runs), else its step budget."""
    meta = json.loads((Path(run_dir) / "checkpoint.json").read_text())
    return meta.get("summary", {}).get("steps") or cfg.steps


def run_reference(run_dir: str | Path, method: Method, cfg: RunConfig) -> Reference:
    """The run's architecture at its own random init, its views and the steps it trained for."""
    steps = trained_steps(run_dir, cfg)
    if not steps:
        raise ValueError(f"{run_dir} records no training steps to give the supervised reference")
    pipelines = method.view_pipelines()
    views = pipelines[0].cfg if pipelines else recipe("simclr", cfg.image_size)  # methods without views: SimCLR's
    device = next(method.parameters()).device
    return Reference(make_backbone=lambda: build_method(cfg, device).backbone, backbone_name=cfg.backbone,
                     views=views, steps=int(steps), batch_size=cfg.batch_size, optim=cfg.optim())


def evaluate_run(run_dir: str | Path, dataset: str, data_dir: str | None = None, eval_dir: str | None = None,
                 image_size: int | None = None, seed: int = 0, k: int = 20, t: float = 0.1,
                 bank: int = 5000, test: int = 1000, knn: bool = True, label_fractions: Sequence[float] = (),
                 random_init: bool = False, supervised: bool = False, finetune: FineTuneConfig | None = None,
                 stages: bool = False, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Scores of a saved run on ``dataset``; kNN with the same protocol as the online monitor.

    ``label_fractions`` add a linear probe per fraction of the bank's labels; ``random_init``,
    ``supervised`` and ``finetune`` add the references (see :func:`sslcore.eval.evaluate`). Every
    score comes with its protocol under ``scores``; ``table`` lays them out as rows. ``stages``
    adds the kNN of every stage of the backbone, trained and at random init, under ``stages``
    (see :mod:`sslcore.stages`).
    """
    method, cfg = load_run(run_dir)
    data_cfg = RunConfig.from_dict({**asdict(cfg), "dataset": dataset, "data_dir": data_dir, "eval_dir": eval_dir,
                                    "image_size": image_size or cfg.image_size, "seed": seed, "knn_k": k,
                                    "knn_t": t, "knn_bank": bank, "knn_test": test, "train_size": None})
    evaluator = make_evaluator(data_cfg, *load_data(data_cfg))
    if evaluator is None:
        raise ValueError(f"{dataset} has no labels to evaluate against")
    out: dict[str, Any] = {"run_dir": str(run_dir), "dataset": dataset, "steps": trained_steps(run_dir, cfg)}
    if stages:
        init = build_method(cfg, next(method.parameters()).device).backbone
        out["stages"] = [s.to_dict() for s in knn_by_stage(method.backbone, evaluator)
                         + knn_by_stage(init, evaluator, model="random init")]
    if not (label_fractions or random_init or supervised or finetune):
        return {**out, "knn_top1": 100 * evaluator(method.backbone), "knn_protocol": evaluator.protocol.to_dict()}
    plan = EvalPlan(knn=evaluator.protocol if knn else None, fractions=tuple(label_fractions), random_init=random_init,
                    supervised=supervised, finetune=finetune, seed=seed)
    reference = run_reference(run_dir, method, cfg) if (random_init or supervised) else None
    scores = evaluate(method.backbone, evaluator.bank_images, evaluator.bank_labels, evaluator.test_images,
                      evaluator.test_labels, plan, reference, progress=progress)
    knn_run = [s for s in scores if (s.metric, s.model) == ("knn", "run")]
    if knn_run:
        out.update(knn_top1=knn_run[0].top1, knn_protocol=knn_run[0].protocol.to_dict())
    return {**out, "scores": scores_json(scores), "table": score_table(scores)}
