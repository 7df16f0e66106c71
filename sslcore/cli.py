"""``sslcore train|submit|queue|resume|cancel|eval|runs|export``: the headless face of the lab, and the
contract its tests use."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from sslcore.data import DATASETS
from sslcore.eval import FineTuneConfig, parse_fractions
from sslcore.methods import METHODS
from sslcore.models import BACKBONES
from sslcore.runs import RunConfig, RunStore
from sslcore.runs.config import default_backbone, default_run


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
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


def _add_data_args(p: argparse.ArgumentParser, image_size_help: str) -> None:
    p.add_argument("--dataset", choices=DATASETS, default="shapes")
    p.add_argument("--data-dir", help="image folder for --dataset folder (root/<class>/* or flat)")
    p.add_argument("--eval-dir", help="labelled folder for kNN evaluation (default: a split of --data-dir)")
    p.add_argument("--image-size", type=int, default=None, help=image_size_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")


def _add_run_args(t: argparse.ArgumentParser) -> None:
    """The flags of ``train`` and ``submit``: everything in a :class:`RunConfig`."""
    t.add_argument("--method", choices=sorted(METHODS), default="simclr")
    _add_data_args(t, "default: the method's default run's on shapes (64 for jigsaw and relpos), else 32")
    t.add_argument("--backbone", choices=sorted(BACKBONES), help="default: convnet (vit_tiny for mae)")
    t.add_argument("--batch-size", type=int, default=None, help="default: the method's default run's (64 for "
                   "mae on shapes), else 128")
    budget = t.add_argument_group("budget (time counts training only; evaluation pauses the clock; default: the "
                                  "method's default run on shapes, 60 s on other data)")
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
    t.add_argument("--checkpoint-every", type=float, default=RunConfig.checkpoint_every_seconds,
                   help="wall-clock seconds between resumable checkpoints")
    t.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="method config override")
    t.add_argument("--out", help="run store folder (default: $SSLCORE_HOME/runs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslcore", description="SSL Lab engine: train and evaluate self-supervised models.")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_run_args(sub.add_parser("train", help="train in the foreground: waits for a free slot in the queue, "
                                               "then trains in this process"))
    _add_run_args(sub.add_parser("submit", help="queue a run (same flags as train) and return; "
                                                "the dispatcher trains it when a slot is free"))

    q = sub.add_parser("queue", help="running and queued runs, with position, owner and expected start")
    q.add_argument("--out", help="run store folder (default: $SSLCORE_HOME/runs)")
    q.add_argument("--json", action="store_true")

    for name, text in (("resume", "continue an interrupted, stopped or cancelled run to its budget (queued)"),
                       ("cancel", "cancel a queued or running run (a running one ends now; its last checkpoint stays)")):
        a = sub.add_parser(name, help=text)
        a.add_argument("run", help="run id, or the run's folder")
        a.add_argument("--out", help="run store folder (default: $SSLCORE_HOME/runs)")
        a.add_argument("--json", action="store_true")

    e = sub.add_parser("eval", help="evaluate a saved run's backbone")
    e.add_argument("--run", required=True, help="run folder")
    _add_data_args(e, "default: the run's")
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

    r = sub.add_parser("runs", help="list the runs in a store (reference runs included)")
    r.add_argument("--out", help="run store folder (default: $SSLCORE_HOME/runs)")
    r.add_argument("--json", action="store_true", help="print one JSON list and nothing else")

    x = sub.add_parser("export", help="write a run's visualised weights (DINO teacher, MAE encoder+decoder) for assets/")
    x.add_argument("--run", required=True, help="run folder")
    x.add_argument("--out", required=True, help="NAME.safetensors (NAME.json and NAME.md are written beside it)")
    x.add_argument("--fp16", action="store_true", help="store floating tensors in float16 (shipped checkpoints do)")
    x.add_argument("--metrics", help="JSON file of measured numbers to record in the provenance note")
    x.add_argument("--note", default="", help="a sentence for the provenance note (e.g. where it was trained)")
    x.add_argument("--json", action="store_true")

    s = sub.add_parser("starter-pack", help="train the reference run of every method on shapes and write the pack "
                                            "(assets/starter; the app installs it into every store)")
    s.add_argument("--out", help="pack folder (default: assets/starter)")
    s.add_argument("--methods", help="comma-separated subset to retrain; the pack keeps the other methods' runs "
                                     "(default: every registered method)")

    d = sub.add_parser("dispatcher", help="serve the queue in the foreground (the app and submit start one themselves)")
    d.add_argument("--root", help="run store folder (default: $SSLCORE_HOME/runs)")
    d.add_argument("--idle-exit", type=float, default=120.0, help="exit after this many seconds with nothing to do")
    d.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)  # the store's lock, taken by the starting process

    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    w.add_argument("--root", required=True)
    w.add_argument("--threads", type=int, required=True)
    w.add_argument("run_id")
    return parser


def refuse_multiprocess(env: Mapping[str, str] = os.environ) -> None:
    """Refuse to train under torchrun: every rank would train its own unrelated run."""
    world = env.get("WORLD_SIZE")
    if world and world != "1":
        raise SystemExit(f"sslcore: this command runs as one process, but WORLD_SIZE={world} (torchrun?): each rank "
                         "would train a separate, unrelated run. Multi-process training is not built yet; start "
                         "`sslcore train` without torchrun (one run uses every core or one GPU).")


def config_from_args(args: argparse.Namespace, command: str) -> RunConfig:
    run = default_run(args.method, args.dataset)  # what the user leaves unset (on shapes: the method's default run)
    if args.steps or args.max_seconds:
        budget = {"steps": args.steps, "max_seconds": args.max_seconds}
    else:
        budget = {"steps": run.steps, "max_seconds": run.max_seconds}
    try:
        return RunConfig(method=args.method, dataset=args.dataset, data_dir=args.data_dir, eval_dir=args.eval_dir,
                         backbone=args.backbone or default_backbone(args.method),
                         image_size=args.image_size or run.image_size, batch_size=args.batch_size or run.batch_size,
                         **budget, seed=args.seed, train_size=args.train_size, optimizer=args.optimizer, lr=args.lr,
                         weight_decay=args.weight_decay, precision=args.precision, device=args.device,
                         knn_k=args.knn_k, knn_t=args.knn_t, knn_bank=args.knn_bank, knn_test=args.knn_test,
                         knn_every_seconds=args.knn_every, knn_stages=args.knn_stages,
                         checkpoint_every_seconds=args.checkpoint_every,
                         options=_options(args.option)).with_dataset_defaults()
    except ValueError as e:
        raise SystemExit(f"sslcore {command}: {e}") from e


def _store_and_id(spec: str, out: str | None) -> tuple[RunStore, str]:
    """A run given by id (in ``out`` or the default store) or by its folder."""
    path = Path(spec)
    if path.is_dir() and (path / "config.json").exists():
        return RunStore(out or path.resolve().parent), path.resolve().name
    return RunStore(out), spec


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    """Queue the run as a foreground run, wait for its slot, then train it here."""
    from sslcore.runs.execute import RunCancelled, execute
    from sslcore.runs.scheduler import OPERATOR, SlotPolicy, cancel, describe_wait, grant, queue, submit

    refuse_multiprocess()
    cfg = config_from_args(args, "train")
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    store = RunStore(args.out)
    run_id = submit(store, [cfg], launcher="foreground")[0]
    log(f"run {run_id} in {store.run_dir(run_id)}")

    def on_term(signum, frame):
        raise RunCancelled()

    signal.signal(signal.SIGTERM, on_term)
    told = 0.0
    try:
        while not (granted := grant(store, SlotPolicy.current(store), run_id)):
            if store.get(run_id).status == "cancelled":
                raise SystemExit(f"sslcore train: run {run_id} was cancelled while it waited")
            if time.monotonic() - told > 15:
                mine = next((e for e in queue(store) if e.record.id == run_id), None)
                if mine is not None:
                    log(f"waiting for a slot: position {mine.position}, starts {describe_wait(mine.starts_in)}")
                told = time.monotonic()
            time.sleep(0.5)
    except (KeyboardInterrupt, RunCancelled):
        cancel(store, run_id, OPERATOR)
        raise SystemExit(f"sslcore train: run {run_id} cancelled before it started")
    import torch

    torch.set_num_threads(granted[0].threads)
    return execute(cfg, store, run_id, log=log)


def cmd_submit(args: argparse.Namespace) -> dict[str, Any]:
    from sslcore.runs.dispatcher import ensure_dispatcher
    from sslcore.runs.scheduler import queue, submit

    refuse_multiprocess()
    cfg = config_from_args(args, "submit")
    store = RunStore(args.out)
    run_id = submit(store, [cfg])[0]
    ensure_dispatcher(store)
    position = next((e.position for e in queue(store) if e.record.id == run_id), 0)
    return {"run_id": run_id, "position": position, "run_dir": str(store.run_dir(run_id))}


def cmd_queue(args: argparse.Namespace) -> None:
    from sslcore.runs.scheduler import SlotPolicy, describe_wait, queue, queue_json

    store = RunStore(args.out)
    policy = SlotPolicy.current(store)
    entries = queue(store, policy)
    if args.json:
        print(json.dumps({"slots": policy.slots, "threads_per_slot": policy.threads,
                          "paused": bool(store.setting("paused", False)), "runs": queue_json(entries)}))
        return
    print(f"{policy.describe()}" + (" -- PAUSED" if store.setting("paused", False) else ""))
    if not entries:
        print("nothing queued or running")
    for e in entries:
        where = "running" if e.position == 0 else f"#{e.position}, starts {describe_wait(e.starts_in)}"
        print(f"{e.record.id}  {e.record.owner_label:12s} {e.record.method:12s} {where}")


def cmd_resume_or_cancel(args: argparse.Namespace) -> dict[str, Any]:
    from sslcore.runs.dispatcher import ensure_dispatcher
    from sslcore.runs.scheduler import OPERATOR, QueueError, cancel, queue, resume

    store, run_id = _store_and_id(args.run, args.out)
    try:
        if args.command == "resume":
            resume(store, run_id, OPERATOR)
            ensure_dispatcher(store)
        else:
            cancel(store, run_id, OPERATOR)
    except (KeyError, QueueError, PermissionError, ValueError) as e:
        raise SystemExit(f"sslcore {args.command}: {e.args[0] if e.args else e}") from e
    position = next((e.position for e in queue(store) if e.record.id == run_id), None)
    return {"run_id": run_id, "status": store.get(run_id).status, "position": position}


def cmd_eval(args: argparse.Namespace) -> dict[str, Any]:
    from sslcore.runs.evaluate import evaluate_run

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


def cmd_runs(args: argparse.Namespace) -> None:
    from sslcore.runs.starter import install_starter_pack

    store = RunStore(args.out)
    install_starter_pack(store)
    runs = store.list()
    if args.json:
        print(json.dumps([_json_safe({"id": r.id, "status": r.status, "method": r.method, "dataset": r.dataset,
                                      "backbone": r.backbone, "owner": r.owner_label, "reference": r.reference,
                                      "summary": r.summary}) for r in runs]))
        return
    for r in runs:
        knn = r.summary.get("knn_top1")
        print(f"{r.id}  {r.status:11s} {r.dataset:8s} {r.backbone:14s} {r.owner_label:12s} "
              f"kNN {'-' if knn is None else f'{knn:.1f}%'}")


def cmd_export(args: argparse.Namespace) -> None:
    from sslcore.export import export_run

    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
    try:
        result = export_run(args.run, args.out, fp16=args.fp16, metrics=metrics, note=args.note)
    except ValueError as e:  # too large, not a run, no tensors to export: a message, not a traceback
        raise SystemExit(f"sslcore export: {e}") from e
    print(json.dumps(result) if args.json else f"wrote {args.out} ({result['weights']}) and its .json/.md")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "worker":
        from sslcore.runs.dispatcher import work

        work(RunStore(args.root), args.run_id, args.threads)
        return 0
    if args.command == "starter-pack":
        from sslcore.runs.starter import build_starter_pack

        refuse_multiprocess()
        try:
            pack = build_starter_pack(Path(args.out) if args.out else None,
                                      args.methods.split(",") if args.methods else None)
        except ValueError as e:
            raise SystemExit(f"sslcore starter-pack: {e}") from e
        print(json.dumps(_json_safe(pack), indent=2))
        return 0
    if args.command == "dispatcher":
        from sslcore.runs.dispatcher import dispatch

        return dispatch(RunStore(args.root), idle_exit=args.idle_exit, lock_fd=args.lock_fd)
    if args.command in ("runs", "queue", "export"):
        {"runs": cmd_runs, "queue": cmd_queue, "export": cmd_export}[args.command](args)
        return 0
    commands = {"train": cmd_train, "submit": cmd_submit, "eval": cmd_eval, "resume": cmd_resume_or_cancel,
                "cancel": cmd_resume_or_cancel}
    result = commands[args.command](args)
    print(json.dumps(_json_safe(result)) if args.json else json.dumps(_json_safe(result), indent=2))
    return 0
