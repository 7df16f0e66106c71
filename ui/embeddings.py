"""The Embeddings page's parts: feature sources, cached features, background projections and scores,
and the thumbnail shown when hovering a point.

Slow work (UMAP, t-SNE, scores with references) runs in background threads whose futures live in
``st.cache_resource``; a fragment polls them only while they run, so the page never blocks.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# Imported before any background job: plotly takes pandas from sys.modules without importing it,
# so while the UMAP thread is importing it (umap-learn does), a chart would see it half-initialised.
import pandas  # noqa: F401
import streamlit as st
import torch
from torch import Tensor, nn

from sslcore.data import DataError, load_split
from sslcore.eval import EvalPlan, FineTuneConfig, evaluate, extract_features, nearest, score_table
from sslcore.models import BACKBONES, create_backbone
from sslcore.models.load import LoadedModel, random_like
from sslcore.runs import DONE, RunConfig
from sslcore.runs.build import build_method, load_data, make_evaluator
from sslcore.runs.evaluate import evaluate_run
from sslcore.runs.execute import CHECKPOINT
from sslcore.runs.saved import load_run
from sslcore.stages import StageReadout, has_stages, stage_rows
from sslcore.viz.embeddings import scatter_figure, thumbnail_sprite
from sslcore.viz.projection import pca, project
from ui.forms import folder_problem
from ui.images import image_grid
from ui.models import FILE, HUB, RANDOM, RUNS, SHIPPED, pick_file, pick_hub, pick_shipped, show_source
from ui.state import run_store
from ui.timeline import pick_step

LABEL_FRACTIONS = (0.01, 0.1, 1.0)
MAX_JOBS = 24


# ---------------------------------------------------------------------------------------------
# where features come from
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureSource:
    """A backbone to embed with.

    ``run_dir`` set (a run's final checkpoint): scores get random-init and supervised references from the
    run's config. ``reference`` set (checkpoints, a point of a run's timeline): a random-init copy of the
    same architecture to score beside it, in a column named ``name``.
    """

    key: str  # cache key, e.g. "run:<id>@final", "run:<id>@120", "random:convnet:32" or "checkpoint:<source>"
    label: str
    image_size: int
    load: Callable[[], nn.Module] = field(compare=False)
    run_dir: Path | None = None
    reference: Callable[[], nn.Module] | None = field(default=None, compare=False)
    name: str = "checkpoint"  # the scores' column of a source with a ``reference``


@st.cache_resource(max_entries=6)  # a run's whole timeline (4 points and its final model) while scrubbing
def _run_backbone(run_id: str, step: int | None = None) -> nn.Module:
    """Run ``run_id``'s backbone at ``step`` of its timeline (None: its final checkpoint)."""
    method, _ = load_run(run_store().run_dir(run_id), step=step)
    return method.backbone.eval()


@st.cache_resource(max_entries=2)
def _run_init_backbone(run_id: str) -> nn.Module:
    """Run ``run_id``'s backbone at its own seeded random init, in float32: the reference of its timeline's points."""
    cfg = RunConfig.from_dict(run_store().get(run_id).config)
    with torch.random.fork_rng():  # build_method seeds the process-wide RNG, shared by every session
        return build_method(cfg, torch.device("cpu")).backbone.eval()


@st.cache_resource(max_entries=4)
def _random_backbone(name: str, image_size: int) -> nn.Module:
    with torch.random.fork_rng():  # process-wide RNG state is shared by every session
        torch.manual_seed(0)  # the init a run with seed 0 starts from
        return create_backbone(name, image_size).eval()


def _from_runs(key: str) -> FeatureSource | None:
    runs = [r for r in run_store().list(status=DONE) if (run_store().run_dir(r.id) / CHECKPOINT).exists()]
    if not runs:
        st.info("No finished run yet: train one on the Train page, or look at a lab checkpoint or a random-init "
                "backbone.")
        return None
    knn = {r.id: r.summary.get("knn_top1") for r in runs}
    labels = {r.id: f"{r.id} ({r.backbone}" + (", reference" if r.reference else f", {r.status}, by {r.owner_label}")
              + ("" if knn[r.id] is None else f", kNN {knn[r.id]:.1f}%") + ")" for r in runs}
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key=f"{key}_run")
    step = pick_step(run_id, key)
    record = run_store().get(run_id)
    size = int(record.config.get("image_size", 32))
    if step is None:
        final = record.summary.get("steps")
        label = f"run {run_id}" + ("" if final is None else f" at step {final} (final)")
        return FeatureSource(f"run:{run_id}@final", label, size, lambda: _run_backbone(run_id),
                             run_store().run_dir(run_id))
    # A point of the timeline: scored beside the run's own random init; the references that need the run's
    # budget (supervised, fine-tuning) and the stage-by-stage kNN are for its final checkpoint.
    return FeatureSource(f"run:{run_id}@{step}", f"run {run_id} at step {step}", size,
                         lambda: _run_backbone(run_id, step), reference=lambda: _run_init_backbone(run_id),
                         name=f"step {step}")


def _random_init(key: str) -> FeatureSource | None:
    names = sorted(BACKBONES)
    name = st.selectbox("Backbone", names, index=names.index("convnet"), key=f"{key}_bb")
    size = st.select_slider("Image size", [16, 32, 64], 32, key=f"{key}_size")
    return FeatureSource(f"random:{name}:{size}", f"random-init {name}", size, lambda: _random_backbone(name, size))


@st.cache_resource(max_entries=2)
def _random_like(key: str, _vit: nn.Module) -> nn.Module:
    return random_like(_vit)


def _checkpoint(loaded: LoadedModel | None) -> FeatureSource | None:
    """A ViT checkpoint (a DINO ViT, or an MAE's encoder) as a feature source, at its training size."""
    if loaded is None:
        return None
    vit = loaded.vit
    show_source(loaded)
    key = f"checkpoint:{loaded.source}"
    return FeatureSource(key, loaded.source, loaded.image_size or 224, lambda: vit,
                         reference=lambda: _random_like(key, vit))


SOURCES: dict[str, Callable[[str], FeatureSource | None]] = {
    RUNS: _from_runs,
    RANDOM: _random_init,
    SHIPPED: lambda key: _checkpoint(pick_shipped(None, key)),
    FILE: lambda key: _checkpoint(pick_file("ViT", key)),
    HUB["vit"]: lambda key: _checkpoint(pick_hub("vit", key)),
}


def pick_source(key: str) -> FeatureSource | None:
    source = st.radio("Features from", list(SOURCES), horizontal=True, key=f"{key}_src")
    try:
        return SOURCES[source](key)
    except Exception as e:  # noqa: BLE001 - a damaged run ends in a message, not a crash
        st.error(f"Could not load this model: {type(e).__name__}: {e}")
        return None


@dataclass(frozen=True)
class DataChoice:
    name: str  # "shapes", "digits" or "folder"
    data_dir: str | None = None


def pick_dataset(key: str) -> DataChoice | None:
    name = st.radio("Labelled data", ["shapes", "digits", "folder"], horizontal=True, key=f"{key}_data")
    if name != "folder":
        return DataChoice(name)
    folder = st.text_input("Folder on the server (root/<class>/*, or with train/ and test/)", key=f"{key}_dir")
    if not folder:
        st.info("Type the path of a labelled image folder.")
        return None
    problem = folder_problem("folder", folder)  # in a workshop: only under the data roots the teacher allows
    if problem:
        st.error(problem)
        return None
    return DataChoice("folder", str(Path(folder).expanduser()))


# ---------------------------------------------------------------------------------------------
# features, cached per source, dataset and size
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Points:
    key: str
    images: Tensor  # (N, 3, S, S) uint8
    labels: Tensor  # (N,)
    classes: tuple[str, ...]
    features: Tensor  # (N, D) L2-normalised
    pca: Tensor  # (N, 2)
    readout: str = "standard output"


@st.cache_resource
def _points_cache() -> OrderedDict[str, Points]:
    return OrderedDict()


def pick_readout(source: FeatureSource, key: str) -> int | None:
    """Which features to plot: the backbone's standard output (None) or one stage's, averaged over space."""
    backbone = source.load()
    if not has_stages(backbone):
        return None
    info = backbone.feature_info
    options = [None, *range(len(info))]
    labels = {None: f"standard output ({backbone.num_features} features)",
              **{i: f"stage {i + 1} of {len(info)} ({f['num_chs']} channels, averaged over space)"
                 for i, f in enumerate(info)}}
    return st.selectbox("Features", options, format_func=labels.get, key=f"{key}_readout",
                        help="Pretext tasks keep what they learned in earlier stages; their last one specialises "
                             "to the task (see 'kNN stage by stage').")


def load_points(source: FeatureSource, data: DataChoice, n: int, stage: int | None = None) -> Points | None:
    """Features of ``n`` training images (the standard output, or stage ``stage`` averaged over space),
    extracted once with a progress bar, then served from cache."""
    key = f"{source.key}|{data.name}|{data.data_dir}|{n}|{stage}"
    cache = _points_cache()
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    try:
        images = load_split(data.name, "train", source.image_size, data_dir=data.data_dir, n=n)
    except DataError as e:
        st.error(str(e))
        return None
    if images.labels is None:
        st.warning("These images have no labels (a flat folder): choose a folder with one sub-folder per class.")
        return None
    bar = st.progress(0.0, text=f"Extracting features of {len(images)} images with {source.label}...")
    backbone = source.load() if stage is None else StageReadout(source.load(), stage)
    feats = extract_features(backbone, images.images, batch_size=256,
                             progress=lambda f: bar.progress(f, text=f"Extracting features... {f:.0%}"))
    bar.empty()
    readout = "standard output" if stage is None else f"stage {stage + 1} of {len(backbone.backbone.feature_info)}"
    cache[key] = Points(key, images.images, images.labels, images.classes, feats, pca(feats), readout)
    while len(cache) > 6:
        cache.popitem(last=False)
    return cache[key]


# ---------------------------------------------------------------------------------------------
# background jobs
# ---------------------------------------------------------------------------------------------
@dataclass
class Job:
    future: Future
    progress: float = 0.0
    started: float = field(default_factory=time.monotonic)


class WorkQueue:
    """Runs submitted calls one after another on a daemon thread. ThreadPoolExecutor's workers are
    joined when the interpreter exits, so stopping the app would wait for a UMAP or a probe that
    nobody will see; these jobs only fill in-memory caches, so dropping them is safe."""

    def __init__(self, name: str):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._calls.put((future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            future, fn, args = self._calls.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to whoever reads the future
                future.set_exception(e)


@st.cache_resource
def _executors() -> dict[str, WorkQueue]:
    # Separate queues: a minutes-long scores job must not hold up a projection.
    return {name: WorkQueue(f"sslcore-{name}") for name in ("projections", "scores")}


@st.cache_resource
def _jobs() -> OrderedDict[str, Job]:
    return OrderedDict()


def submit(queue: str, key: str, fn: Callable[..., Any], *args: Any, progress: bool = False) -> Job:
    """The job under ``key``, started on ``queue`` if there is none (a failed one is retried)."""
    jobs = _jobs()
    job = jobs.get(key)
    if job is None or (job.future.done() and job.future.exception() is not None):
        job = Job(Future())
        call = (lambda: fn(*args, progress=lambda f: setattr(job, "progress", f))) if progress else (lambda: fn(*args))
        job.future = _executors()[queue].submit(call)
        jobs[key] = job
        while len(jobs) > MAX_JOBS:
            jobs.popitem(last=False)
    return job


def find_job(key: str) -> Job | None:
    return _jobs().get(key)


# ---------------------------------------------------------------------------------------------
# the scatter with hover thumbnails, and nearest neighbours of a clicked point
# ---------------------------------------------------------------------------------------------
_HOVER_JS = """
export default function ({ data }) {
  window.__sslThumbs = window.__sslThumbs || {};
  window.__sslThumbs[data.chart] = data;
  let tip = document.getElementById("ssl-thumb");
  if (!tip) {
    tip = document.createElement("div");
    tip.id = "ssl-thumb";
    tip.setAttribute("role", "img");
    tip.style.cssText = "position:fixed;display:none;z-index:100000;pointer-events:none;padding:4px;" +
      "background:white;border:1px solid #999;border-radius:4px;box-shadow:0 2px 8px rgba(0,0,0,.3);font:12px sans-serif";
    tip.innerHTML = '<div class="ssl-thumb-image" style="width:96px;height:96px;image-rendering:pixelated"></div>' +
      '<div class="ssl-thumb-caption" style="max-width:96px;overflow:hidden;white-space:nowrap"></div>';
    document.body.appendChild(tip);
  }
  const attach = () => {
    const gd = document.querySelector(".st-key-" + data.chart + " .js-plotly-plot");
    if (!gd || gd.__sslHover || typeof gd.on !== "function") return;
    gd.__sslHover = true;
    gd.on("plotly_hover", (ev) => {
      const d = window.__sslThumbs[data.chart], p = ev.points[0];
      const i = Array.isArray(p.customdata) ? p.customdata[0] : p.customdata;
      if (i === undefined || i === null || i >= d.count) return;
      const img = tip.firstChild, size = 96;
      img.style.backgroundImage = "url(" + d.sprite + ")";
      img.style.backgroundSize = d.columns * size + "px auto";
      img.style.backgroundPosition = -(i % d.columns) * size + "px " + -Math.floor(i / d.columns) * size + "px";
      tip.lastChild.textContent = p.data.name + " #" + i;
      tip.dataset.index = i;
      tip.style.left = ev.event.clientX + 16 + "px";
      tip.style.top = ev.event.clientY + 16 + "px";
      tip.style.display = "block";
    });
    gd.on("plotly_unhover", () => { tip.style.display = "none"; });
  };
  attach();
  const timer = setInterval(attach, 500);  // the chart may mount after this script, or be replaced
  return () => clearInterval(timer);
}
"""
_hover = st.components.v2.component("sslcore_thumbnail_hover", js=_HOVER_JS)


@st.cache_data(max_entries=8, show_spinner=False)
def _sprite(key: str, _images: Tensor) -> dict[str, Any]:
    s = thumbnail_sprite(_images)
    return {"sprite": s.data_uri, "columns": s.columns, "count": s.count}


def _selected(event: Any) -> int | None:
    """The clicked point's index (its customdata) from a plotly selection state, if any."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    if not points:
        return None
    c = points[0].get("customdata")
    c = c[0] if isinstance(c, list) else c
    return None if c is None else int(c)


@st.cache_resource
def _umap_warmup() -> Future:
    """A tiny UMAP once per server in the background, so numba has compiled before anyone asks."""
    return _executors()["projections"].submit(project, torch.randn(64, 8), "UMAP")


def projection_panel(points: Points, method: str, key: str) -> None:
    """PCA at once; UMAP/t-SNE computed in the background and swapped in when ready."""
    _umap_warmup()
    job = None if method == "PCA" else submit("projections", f"{points.key}|{method}", project, points.features, method)
    waiting = job is not None and not job.future.done()

    @st.fragment(run_every=1.0 if waiting else None)
    def panel() -> None:
        xy, title = points.pca, "PCA"
        if job is not None and job.future.done():
            if job.future.exception() is not None:
                st.error(f"{method} failed: {job.future.exception()}")
            else:
                xy, title = job.future.result(), method
        elif job is not None:
            first = " (the first UMAP in a server compiles numba code: up to a minute)" if method == "UMAP" else ""
            st.caption(f":material/hourglass_top: {method} is computing in the background{first}; "
                       f"PCA meanwhile ({time.monotonic() - job.started:.0f} s).")
        chart = f"{key}_scatter"
        fig = scatter_figure(xy, points.labels, points.classes, f"{title} of {len(xy)} embeddings ({points.readout})")
        event = st.plotly_chart(fig, key=chart, on_select="rerun", selection_mode="points")
        _hover(data={"chart": chart, **_sprite(points.key, points.images)}, key=f"{key}_hover")
        picked = _selected(event)
        if picked is None:
            st.caption("Hover a point to see its image; click one to see its nearest neighbours in feature space.")
        else:
            neighbours = nearest(points.features, picked, 8)
            sims = (points.features[neighbours] @ points.features[picked]).tolist()
            st.markdown(f"**#{picked} ({points.classes[points.labels[picked]]}) and its 8 nearest neighbours** "
                        "(cosine similarity of the frozen features)")
            idx = [picked, *neighbours.tolist()]
            captions = ["selected"] + [f"{points.classes[points.labels[i]]} {s:.2f}" for i, s in zip(idx[1:], sims)]
            image_grid([points.images[i].permute(1, 2, 0).numpy() for i in idx], captions, columns=9, width=64)
        if waiting and job.future.done():
            st.rerun()  # ready: rerun the page once so this fragment stops polling

    panel()


# ---------------------------------------------------------------------------------------------
# scores with their references, on demand
# ---------------------------------------------------------------------------------------------
def _frozen_scores(models: list[tuple[str, nn.Module]], image_size: int, data: DataChoice, plan: EvalPlan,
                   progress: Callable) -> dict:
    """kNN and linear probes of each named backbone on the same bank and test images."""
    cfg = RunConfig(dataset=data.name, data_dir=data.data_dir, image_size=image_size)
    ev = make_evaluator(cfg, *load_data(cfg))
    if ev is None:
        raise DataError(f"{data.name} has no labels to score against")
    plan = EvalPlan(knn=ev.protocol, fractions=plan.fractions, seed=plan.seed)
    scores = []
    for i, (name, backbone) in enumerate(models):
        scores += evaluate(backbone, ev.bank_images, ev.bank_labels, ev.test_images, ev.test_labels, plan, model=name,
                           progress=lambda f, i=i: progress((i + f) / len(models)))
    return {"table": score_table(scores), "protocols": [s.describe() for s in scores]}


def _run_scores(run_dir: Path, data: DataChoice, supervised: bool, finetune: bool, progress: Callable) -> dict:
    out = evaluate_run(run_dir, data.name, data_dir=data.data_dir, label_fractions=LABEL_FRACTIONS,
                       random_init=True, supervised=supervised, finetune=FineTuneConfig() if finetune else None,
                       progress=progress)
    protocols = [s["describe"] for model in out["scores"].values() for s in model.values()]
    return {"table": out["table"], "protocols": protocols}


def _stage_scores(run_dir: Path, data: DataChoice) -> dict:
    out = evaluate_run(run_dir, data.name, data_dir=data.data_dir, stages=True)
    return {"table": stage_rows(out["stages"]), "protocols": list(dict.fromkeys(s["describe"] for s in out["stages"]))}


def scores_panel(source: FeatureSource, data: DataChoice, key: str) -> None:
    """Buttons start the scores in the background; a fragment per job shows progress, then its table."""
    supervised = finetune = False
    if source.run_dir is not None:
        supervised = st.checkbox("Supervised reference (same backbone, views and steps as the run, per label "
                                 "fraction: as long as the run, three times)", key=f"{key}_sup")
        finetune = st.checkbox("Fine-tune the encoder (lr 1e-4, head 1e-2, 10 epochs per fraction)", key=f"{key}_ft")
    job_key = f"scores|{source.key}|{data}|{supervised}|{finetune}"
    stages_key = f"stages|{source.key}|{data}"
    if st.button("Compute scores", key=f"{key}_go", type="primary"):
        if source.run_dir is None:
            # Resolved here, in the script thread: cached resources are not for background threads.
            models = ([("random init", source.load())] if source.reference is None
                      else [(source.name, source.load()), ("random init", source.reference())])
            submit("scores", job_key, _frozen_scores, models, source.image_size, data,
                   EvalPlan(fractions=LABEL_FRACTIONS), progress=True)
        else:
            submit("scores", job_key, _run_scores, source.run_dir, data, supervised, finetune, progress=True)
    if source.run_dir is not None and st.button(
            "kNN stage by stage", key=f"{key}_stages",
            help="The same kNN on every stage of the backbone, beside its random init: pretext tasks keep what "
                 "they learned in earlier stages, their last one specialises to the task."):
        submit("scores", stages_key, _stage_scores, source.run_dir, data)
    jobs = [job for job in (find_job(job_key), find_job(stages_key)) if job is not None]
    if not jobs:
        on_request = " (and a supervised reference on request)" if source.run_dir is not None else ""
        st.caption("kNN and linear probes with 1%, 10% and 100% of the labels, each beside the same "
                   f"architecture at random init{on_request}.")
        if source.key.startswith("run:") and source.run_dir is None:  # a point of a run's timeline
            st.caption(f"At {source.name} the run is scored beside its own random init; the supervised and "
                       "fine-tuned references and the stage-by-stage kNN are offered at its final step.")
    for job in jobs:
        _job_panel(job)


def _job_panel(job: Job) -> None:
    waiting = not job.future.done()

    @st.fragment(run_every=1.0 if waiting else None)
    def panel() -> None:
        if not job.future.done():
            st.progress(job.progress, text=f"Scoring in the background... {job.progress:.0%} "
                                           f"({time.monotonic() - job.started:.0f} s)")
            return
        if job.future.exception() is not None:
            st.error(f"Scoring failed: {job.future.exception()}")
        else:
            result = job.future.result()
            st.dataframe(result["table"], hide_index=True)
            for line in result["protocols"]:
                st.caption(line)
        if waiting:
            st.rerun()  # done: rerun once so polling stops

    panel()
