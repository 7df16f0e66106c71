"""One run end to end: data, method, monitors, the training loop, checkpoints, summary and status.

The CLI's foreground ``sslcore train`` and the dispatcher's workers both call :func:`execute`. A run
writes a resumable train state every ``checkpoint_every_seconds`` (and the model checkpoint the
viewers read beside it), so a killed worker loses at most that much training; :func:`execute`
with ``resume=True`` continues from it to the run's budget.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from sslcore.checkpoint import CheckpointError, load_snapshot, save_checkpoint, save_snapshot
from sslcore.methods.base import Method
from sslcore.models.backbones import count_parameters
from sslcore.runs.build import build_method, load_data, make_evaluator, resolve_device
from sslcore.runs.config import RunConfig
from sslcore.runs.monitors import KNNMonitor, MetricsRecorder, PreviewMonitor, preview_images, train_scale_evaluator
from sslcore.runs.store import ACTIVE, RunStore
from sslcore.runs.timeline import TimelineMonitor
from sslcore.runs.timeline import keep as keep_on_timeline
from sslcore.stages import has_stages, stage_protocols
from sslcore.train import NonFiniteLossError, Snapshot, TrainState, bf16_supported, fit
from sslcore.viz.previews import has_preview

CHECKPOINT = "checkpoint.safetensors"  # the model, for viewers and evaluation (sslcore-method-v1)
TRAIN_STATE = "train_state.safetensors"  # model, optimiser, counters and random stream, to resume


class RunCancelled(BaseException):
    """Raised in a worker by SIGTERM (a cancel): training ends now; the last saved state stays.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way swallows it.
    """


def execute(cfg: RunConfig, store: RunStore, run_id: str, log: Callable[[str], None] = print,
            resume: bool = False) -> dict[str, Any]:
    """Train ``cfg`` as run ``run_id``: status, live metrics, checkpoints and summary go to ``store``.

    With ``resume``, continue from the run's last train state (from scratch when it has none).
    """
    if not store.mark_running(run_id, os.getpid()):
        log(f"run {run_id} was cancelled before it started")
        return store.get(run_id).summary
    run_dir = store.run_dir(run_id)
    device = resolve_device(cfg.device)
    train, test = load_data(cfg)
    method = build_method(cfg, device)
    evaluator = make_evaluator(cfg, train, test)
    snapshot = _load_train_state(store, run_id, method, log) if resume else None
    if snapshot is None:
        store.truncate_metrics(run_id, -1)
        summary = _describe(cfg, method, device, len(train), str(run_dir))
    else:
        summary = dict(store.get(run_id).summary)
        summary["resumed_at"] = [*summary.get("resumed_at", []), snapshot.state.step]
    recorder = MetricsRecorder(store, run_id)
    callbacks: list = [recorder]
    monitor = scaled = None
    if evaluator is not None:
        stages = cfg.knn_stages and has_stages(method.backbone)
        monitor = KNNMonitor(evaluator, cfg.knn_every_seconds, stages,
                             start_seconds=snapshot.state.seconds if snapshot else 0.0)
        callbacks.insert(0, monitor)
        scaled_evaluator = train_scale_evaluator(method, evaluator)
        # Read at the start and the end only: the resized images cost several times a standard check.
        scaled = None if scaled_evaluator is None else KNNMonitor(scaled_evaluator, math.inf, stages)
        if snapshot is None:
            _measure_random_init(summary, method, monitor, scaled, store, run_id, log)
    store.set_summary(run_id, summary)
    timeline = TimelineMonitor(run_dir, cfg, snapshot.state.progress if snapshot else 0.0)
    callbacks.append(timeline)
    if snapshot is None:
        keep_on_timeline(run_dir, method, cfg, 0, 0.0)  # random init: where the timeline starts
    preview = None
    if has_preview(method):
        preview = PreviewMonitor(preview_images(train, test), run_dir / "preview.png",
                                 source="held-out" if test is not None else "training")
        callbacks.append(preview)

    def save(snap: Snapshot, m: Method) -> None:
        recorder.flush()  # every metric up to the saved step is in the store before the state is
        if not _finite(m):  # a step blew the weights up: the last good state stays on disk
            return
        save_snapshot(run_dir / TRAIN_STATE, snap, m.state_dict())
        _save_model(run_dir, m, cfg, {**summary, "steps": snap.state.step, "seconds": round(snap.state.seconds, 2)})

    last_poll, stop_flag = 0.0, False

    def should_stop(state: TrainState) -> bool:
        nonlocal last_poll, stop_flag
        if time.monotonic() - last_poll > 0.5:
            last_poll, stop_flag = time.monotonic(), store.stop_requested(run_id)
        return stop_flag

    status, error, state, wall = "finished", "", None, time.monotonic()
    try:
        state = fit(method, train.images, batch_size=cfg.batch_size, optim=cfg.optim(), steps=cfg.steps,
                    max_seconds=cfg.max_seconds, seed=cfg.seed, precision=cfg.precision, callbacks=callbacks,
                    should_stop=should_stop, resume=snapshot, snapshot_every=cfg.checkpoint_every_seconds,
                    on_snapshot=save)
        status = "stopped" if stop_flag else "finished"
    except NonFiniteLossError as e:
        status, error, state = "diverged", str(e), e.state
    except KeyboardInterrupt:
        status, error = "stopped", "interrupted from the keyboard; resume continues from the last checkpoint"
    except RunCancelled:
        recorder.flush()
        store.export_metrics(run_id)
        store.set_status(run_id, "cancelled", only_if=ACTIVE)
        log(f"run {run_id} cancelled; its last checkpoint stays")
        return summary
    recorder.flush()
    method.eval()
    finite = _finite(method)
    if not finite:
        good_step = _restore_last_good(run_dir / TRAIN_STATE, method)
        finite = good_step is not None
        if finite:
            summary["checkpoint_step"] = good_step
            error += f" The weights went non-finite; the run keeps its last good checkpoint, from step {good_step}."
        else:
            error += " The weights went non-finite before its first checkpoint: there is nothing to keep."
    if state is not None:
        summary.update(steps=state.step, seconds=round(state.seconds, 2), loss=state.loss,
                       images_per_second=state.images_seen / max(state.seconds, 1e-9),
                       skipped_steps=state.skipped_steps)
    if finite:
        if preview is not None and state is not None:
            preview.write(method, state.step)
        if monitor is not None:
            _measure_final(summary, method, monitor, scaled, store, run_id, log)
    summary["wall_seconds"] = round(time.monotonic() - wall, 2)
    if finite:
        _save_model(run_dir, method, cfg, summary)
    if status == "finished":
        (run_dir / TRAIN_STATE).unlink(missing_ok=True)  # nothing left to resume
    store.set_summary(run_id, summary)
    store.export_metrics(run_id)
    store.set_status(run_id, status, error=error, only_if=ACTIVE)
    return summary


def _describe(cfg: RunConfig, method: Method, device: torch.device, train_images: int, run_dir: str) -> dict[str, Any]:
    precision = cfg.precision == "bf16" or (cfg.precision == "auto" and bf16_supported(device))
    return {"run_dir": run_dir, "method": cfg.method, "dataset": cfg.dataset, "backbone": cfg.backbone,
            "image_size": cfg.image_size, "batch_size": cfg.batch_size, "device": str(device),
            "precision": "bf16" if precision else "fp32", "parameters": count_parameters(method.backbone),
            "train_images": train_images, "torch_threads": torch.get_num_threads(),
            # Every field of the method's config, defaults included: the run's ``options`` list only what
            # was set, and a default changed in a later release must not rewrite what this run trained with.
            "method_config": asdict(method.cfg)}


def _measure_random_init(summary: dict[str, Any], method: Method, monitor: KNNMonitor, scaled: KNNMonitor | None,
                         store: RunStore, run_id: str, log: Callable[[str], None]) -> None:
    """The kNN baselines of the network before its first step, into ``summary`` and the step-0 metrics."""
    protocol = monitor.evaluator.protocol
    summary["knn_top1_random_init"] = init = monitor.measure(method)
    summary["knn_protocol"] = protocol.to_dict()
    if monitor.stages:
        summary["knn_stages_random_init"] = monitor.last_stages
        summary["knn_stage_protocols"] = [p.to_dict() for p in stage_protocols(method.backbone, protocol)]
    first = {**monitor.logs(init), "knn_top1_random_init": init}
    log(f"random-init kNN top-1: {init:.1f}% ({protocol.describe()})")
    if scaled is not None:
        top1 = scaled.measure(method)
        summary["knn_train_scale"] = {"protocol": scaled.evaluator.protocol.to_dict(),
                                      "describe": scaled.evaluator.protocol.describe(),
                                      "random_init": top1, "stages_random_init": scaled.last_stages}
        first["knn_top1_train_scale"] = top1
        log(f"random-init kNN top-1 at the training scale: {top1:.1f}% ({scaled.evaluator.protocol.describe()})")
    store.log_metrics(run_id, 0, 0.0, first)


def _measure_final(summary: dict[str, Any], method: Method, monitor: KNNMonitor, scaled: KNNMonitor | None,
                   store: RunStore, run_id: str, log: Callable[[str], None]) -> None:
    """The trained network's kNN (and its stages, and at the training scale), into ``summary`` and the last metrics."""
    summary["knn_top1"] = monitor.measure(method)
    if monitor.stages:
        summary["knn_stages"] = monitor.last_stages
    last = monitor.logs(summary["knn_top1"])
    log(f"final kNN top-1: {summary['knn_top1']:.1f}%")
    if scaled is not None:
        top1 = scaled.measure(method)
        summary["knn_train_scale"].update(top1=top1, stages=scaled.last_stages)
        last["knn_top1_train_scale"] = top1
        log(f"final kNN top-1 at the training scale: {top1:.1f}%")
    store.log_metrics(run_id, summary.get("steps", 0), summary.get("seconds", 0.0), last)


def _save_model(run_dir: Path, method: Method, cfg: RunConfig, summary: dict[str, Any]) -> None:
    save_checkpoint(run_dir / CHECKPOINT, method.state_dict(),
                    {"config": asdict(cfg), "summary": summary, "format": "sslcore-method-v1"})


def _finite(method: Method) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in method.state_dict().values() if v.is_floating_point())


def _restore_last_good(path: Path, method: Method) -> int | None:
    """Load the weights of the last saved train state (saved only while finite) into ``method``; its step,
    or None when there is none."""
    if not path.exists():
        return None
    model_state, snapshot = load_snapshot(path)
    method.load_state_dict(model_state)
    return snapshot.state.step


def _load_train_state(store: RunStore, run_id: str, method: Method, log: Callable[[str], None]) -> Snapshot | None:
    """The run's last train state loaded into ``method``; None (start over) when it has none or it is unreadable."""
    path = store.run_dir(run_id) / TRAIN_STATE
    if not path.exists():
        log(f"run {run_id} has no train state yet: it starts over")
        return None
    try:
        model_state, snapshot = load_snapshot(path)
        method.load_state_dict(model_state)
    except (CheckpointError, RuntimeError) as e:
        log(f"run {run_id}: its train state cannot be used ({e}); it starts over")
        return None
    store.truncate_metrics(run_id, snapshot.state.step)  # steps logged after the state are trained again
    log(f"resuming run {run_id} at step {snapshot.state.step} ({snapshot.state.seconds:.1f} s of training)")
    return snapshot
