"""``sslcore train|eval|runs|worker``: the headless face of the lab, and the contract its tests use."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from sslcore.data import DATASETS
from sslcore.eval import FineTuneConfig, parse_fractions
from sslcore.methods import METHODS
from sslcore.models import BACKBONES
from sslcore.runner import RunConfig, evaluate_run, execute, work
from sslcore.runs import RunStore


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    return x


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` method options; values parsed as JSON when they can be (numbers, booleans, lists)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--option expects key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=DATASETS, default="shapes")
    p.add_argument("--data-dir", help="image folder for --dataset folder (root/<class>/* or flat)")
    p.add_argument("--eval-dir", help="labelled folder for kNN evaluation (default: a split of --data-dir)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslcore", description="SSL Lab engine: train and evaluate self-supervised models.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a method headless with the app's engine")
    t.add_argument("--method", choices=sorted(METHODS), default="simclr")
    _add_data_args(t)
    t.add_argument("--backbone", choices=sorted(BACKBONES), default="convnet")
    t.add_argument("--batch-size", type=int, default=128)
    budget = t.add_argument_group("budget (time counts training only; evaluation pauses the clock)")
    budget.add_argument("--max-seconds", type=float)
    budget.add_argument("--steps", type=int)
    t.add_argument("--train-size", type=int, help="use at most this many training images")
    t.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--weight-decay", type=float, default=1e-4)
    t.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    t.add_argument("--device", default="auto")
    t.add_argument("--knn-k", type=int, default=20)
    t.add_argument("--knn-t", type=float, default=0.1)
    t.add_argument("--knn-bank", type=int, default=5000, help="labelled images the kNN monitor searches")
    t.add_argument("--knn-test", type=int, default=1000, help="held-out images the kNN monitor classifies")
    t.add_argument("--knn-every", type=float, default=10.0, help="seconds of training between kNN checks")
    t.add_argument("--no-knn-stages", dest="knn_stages", action="store_false",
                   help="score only the standard readout at each check, not every stage of the backbone")
    t.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="method config override")
    t.add_argument("--out", help="run store folder (default: $SSLCORE_HOME/runs)")

    e = sub.add_parser("eval", help="evaluate a saved run's backbone")
    e.add_argument("--run", required=True, help="run folder")
    _add_data_args(e)
    e.add_argument("--knn", action="store_true", help="weighted kNN top-1")
    e.add_argument("--knn-k", type=int, default=20)
    e.add_argument("--knn-t", type=float, default=0.1)
    e.add_argument("--knn-bank", type=int, default=5000)
    e.add_argument("--knn-test", type=int, default=1000)
    e.add_argument("--linear", action="store_true", help="linear probe (L-BFGS, C by 3-fold CV) per label fraction")
    e.add_argument("--label-fractions", default="1", metavar="F,F,...",
                   help="fractions of the bank's labels, stratified and seeded (default 1; e.g. 0.01,0.1,1)")
    e.add_argument("--stages", action="store_true",
                   help="kNN on every stage's pooled output, trained and at random init (where the features are)")
    e.add_argument("--random-init", action="store_true", help="the same scores for the run's architecture at init")
    e.add_argument("--supervised", action="store_true",
                   help="supervised reference per fraction: same backbone and views, cross-entropy, the run's steps")
    e.add_argument("--finetune", action="store_true", help="fine-tune the encoder per fraction (two learning rates)")
    e.add_argument("--finetune-epochs", type=int, default=FineTuneConfig.epochs)
    e.add_argument("--finetune-encoder-lr", type=float, default=FineTuneConfig.encoder_lr)
    e.add_argument("--finetune-head-lr", type=float, default=FineTuneConfig.head_lr)

    r = sub.add_parser("runs", help="list the runs in a store")
    r.add_argument("--out", help="run store folder (default: $SSLCORE_HOME/runs)")
    r.add_argument("--json", action="store_true")

    x = sub.add_parser("export", help="write a run's visualised weights (DINO teacher, MAE encoder+decoder) for assets/")
    x.add_argument("--run", required=True, help="run folder")
    x.add_argument("--out", required=True, help="NAME.safetensors (NAME.json and NAME.md are written beside it)")
    x.add_argument("--fp16", action="store_true", help="store floating tensors in float16 (shipped checkpoints do)")
    x.add_argument("--metrics", help="JSON file of measured numbers to record in the provenance note")
    x.add_argument("--note", default="", help="a sentence for the provenance note (e.g. where it was trained)")
    x.add_argument("--json", action="store_true")

    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    w.add_argument("--root", required=True)
    w.add_argument("run_ids", nargs="+")
    return parser


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    try:
        cfg = RunConfig(method=args.method, dataset=args.dataset, data_dir=args.data_dir, eval_dir=args.eval_dir,
                        backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size,
                        steps=args.steps, max_seconds=args.max_seconds if (args.max_seconds or args.steps) else 60.0,
                        seed=args.seed, train_size=args.train_size, optimizer=args.optimizer, lr=args.lr,
                        weight_decay=args.weight_decay, precision=args.precision, device=args.device,
                        knn_k=args.knn_k, knn_t=args.knn_t, knn_bank=args.knn_bank, knn_test=args.knn_test,
                        knn_every_seconds=args.knn_every, knn_stages=args.knn_stages,
                        options=_options(args.option)).with_dataset_defaults()
    except ValueError as e:
        raise SystemExit(f"sslcore train: {e}") from e
    store = RunStore(args.out)
    run_id = store.create(asdict(cfg))
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    log(f"run {run_id} in {store.run_dir(run_id)}")
    return execute(cfg, store, run_id, log=log)


def cmd_eval(args: argparse.Namespace) -> dict[str, Any]:
    if not (args.knn or args.linear or args.supervised or args.finetune or args.stages):
        raise SystemExit("choose at least one evaluation: --knn, --linear, --supervised, --finetune or --stages")
    try:
        fractions = parse_fractions(args.label_fractions)
        finetune = FineTuneConfig(epochs=args.finetune_epochs, encoder_lr=args.finetune_encoder_lr,
                                  head_lr=args.finetune_head_lr) if args.finetune else None
    except ValueError as e:
        raise SystemExit(f"sslcore eval: {e}") from e
    needs_fractions = args.linear or args.supervised or args.finetune
    return evaluate_run(Path(args.run), dataset=args.dataset, data_dir=args.data_dir, eval_dir=args.eval_dir,
                        image_size=args.image_size, seed=args.seed, k=args.knn_k, t=args.knn_t,
                        bank=args.knn_bank, test=args.knn_test, knn=args.knn,
                        label_fractions=fractions if needs_fractions else (), random_init=args.random_init,
                        supervised=args.supervised, finetune=finetune, stages=args.stages)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "worker":
        work(RunStore(args.root), args.run_ids)
        return 0
    if args.command == "runs":
        runs = RunStore(args.out).list()
        if args.json:
            print(json.dumps([_json_safe({"id": r.id, "status": r.status, "summary": r.summary}) for r in runs]))
        for r in runs:
            knn = r.summary.get("knn_top1")
            print(f"{r.id}  {r.status:9s} {r.dataset:8s} {r.backbone:14s} "
                  f"kNN {'-' if knn is None else f'{knn:.1f}%'}")
        return 0
    if args.command == "export":
        from sslcore.export import export_run

        metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
        try:
            result = export_run(args.run, args.out, fp16=args.fp16, metrics=metrics, note=args.note)
        except ValueError as e:  # too large, not a run, no tensors to export: a message, not a traceback
            raise SystemExit(f"sslcore export: {e}") from e
        print(json.dumps(result) if args.json else f"wrote {args.out} ({result['weights']}) and its .json/.md")
        return 0
    result = cmd_train(args) if args.command == "train" else cmd_eval(args)
    if args.json:
        print(json.dumps(_json_safe(result)))
    else:
        print(json.dumps(_json_safe(result), indent=2))
    return 0
