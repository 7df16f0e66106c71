"""Compare page panels: the score table with its protocols, overlaid curves, shared embeddings, races."""

from __future__ import annotations


import streamlit as st

from sslcore.compare import (SharedEmbedding, align_curves, comparison_rows, differences, embed_runs, fairness_flags,
                             lane, races)
from sslcore.methods import METHODS
from sslcore.models import BACKBONES
from sslcore.runs import ACTIVE, RunConfig, RunRecord
from sslcore.runs.config import VIT_ONLY_METHODS
from sslcore.runs.scheduler import may_modify, stop
from sslcore.viz.figures import embedding_grid_figure, overlay_figure
from ui.forms import folder_problem
from ui.session import actor, presets
from ui.state import run_store

X_AXES = {"step": "step", "seconds": "training seconds"}


def label(record: RunRecord) -> str:
    """Short, unique name of a run in legends: method and the id's random suffix (or 'reference')."""
    return f"{record.method} · {'reference' if record.reference else record.id.rsplit('-', 1)[-1]}"


def comparison_table(records: list[RunRecord], key: str) -> None:
    """Every score beside its protocol, with a banner naming what makes the comparison unfair."""
    diff = differences(fairness_flags(records))
    if diff.get("incomparable"):
        st.error(f"Apples to oranges: these runs differ in {', '.join(diff['incomparable'])}. Their scores do "
                 "not measure the same thing; see the fairness column.")
    if diff.get("differs"):
        st.warning(f"Unequal conditions: the runs differ in {', '.join(diff['differs'])} (see the fairness column).")
    if not diff and len(records) > 1:
        st.success("Same data, budget, seed, backbone and protocols: a fair comparison.")
    st.dataframe(comparison_rows(records), hide_index=True, key=f"{key}_table")


def curves(records: list[RunRecord], key: str) -> None:
    """Loss and kNN of every run on one chart each, against steps or training seconds."""
    x = st.radio("x axis", list(X_AXES), format_func=X_AXES.get, horizontal=True, key=f"{key}_x")
    store = run_store()
    metrics = {label(r): store.metrics(r.id) for r in records}
    times = {label(r): store.step_seconds(r.id) for r in records} if x == "seconds" else {}
    left, right = st.columns(2)
    left.plotly_chart(overlay_figure(align_curves(metrics, times, "loss", x), "training loss", X_AXES[x]),
                      key=f"{key}_loss")
    left.caption("Each method has its own loss: compare the shapes of the curves, not their heights.")
    right.plotly_chart(overlay_figure(align_curves(metrics, times, "knn_top1", x), "online kNN top-1 (%)",
                                      X_AXES[x], "%", markers=True), key=f"{key}_knn")


@st.cache_data(show_spinner="Extracting features of every run...")
def shared_embedding(run_ids: tuple[str, ...], dataset: str, data_dir: str | None, eval_dir: str | None,
                     n: int) -> SharedEmbedding:
    return embed_runs(run_store(), run_ids, dataset, data_dir, eval_dir, n)


def embeddings(records: list[RunRecord], key: str) -> None:
    """PCA of each run's features on the same labelled images, side by side."""
    ready = [r for r in records if (run_store().run_dir(r.id) / "checkpoint.safetensors").exists()]
    if not ready:
        st.info("No checkpoint yet: embeddings appear once a run has finished.")
        return
    sources = sorted({(r.dataset, r.config.get("data_dir"), r.config.get("eval_dir")) for r in ready}, key=str)
    c1, c2 = st.columns([3, 1])
    source = c1.selectbox("Labelled images", sources, key=f"{key}_src",
                          format_func=lambda s: s[2] or (f"{s[0]} ({s[1]})" if s[1] else f"{s[0]} test split"))
    n = c2.select_slider("images", [200, 500, 1000, 2000], 500, key=f"{key}_n")
    try:
        emb = shared_embedding(tuple(r.id for r in ready), *source, n)
    except ValueError as e:
        st.warning(str(e))
        return
    names = {r.id: label(r) for r in ready}
    st.plotly_chart(embedding_grid_figure({names[i]: xy.numpy() for i, xy in emb.coords.items()}, emb.labels.tolist(),
                                          emb.classes), key=f"{key}_emb")
    st.caption("PCA of L2-normalised backbone features; axes are each run's own first two principal components, "
               "so compare how classes separate, not where they sit.")


def race_form(key: str = "race") -> tuple[list[str], RunConfig] | None:
    """Methods and the shared conditions of a race; returns them when submitted and valid."""
    with st.form(f"{key}_form"):
        class_presets = presets()
        offered = sorted(class_presets.methods if class_presets else METHODS)
        methods = st.multiselect("Methods (queued in this order; one slot trains them one after another)", offered,
                                 default=[m for m in ("simclr", "byol") if m in offered], key=f"{key}_methods")
        c1, c2, c3 = st.columns(3)
        dataset = c1.selectbox("Dataset", ["shapes", "digits", "folder"], key=f"{key}_data")
        data_dir = c1.text_input("Folder (for 'folder')", "", key=f"{key}_dir")
        backbone = c2.selectbox("Backbone", sorted(BACKBONES), index=sorted(BACKBONES).index("convnet"),
                                key=f"{key}_bb")
        image_size = c2.select_slider("Image size", [16, 24, 32, 48, 64], 32, key=f"{key}_size")
        batch_size = c2.select_slider("Batch size", [16, 32, 64, 128, 256], 128, key=f"{key}_bs")
        budget_kind = c3.radio("Budget per method", ["seconds", "steps"], horizontal=True, key=f"{key}_bk")
        budget = c3.number_input("Budget", 1, 100_000, 60, key=f"{key}_budget")
        seed = int(c3.number_input("Seed", 0, 2**31 - 1, 0, key=f"{key}_seed"))
        st.caption(f"Methods that need a ViT ({', '.join(sorted(VIT_ONLY_METHODS))}) get vit_tiny when the "
                   "backbone is not a ViT; the table flags the difference.")
        submitted = st.form_submit_button("Start the race", type="primary")
    if not submitted:
        return None
    if not methods:
        st.error("Pick at least one method.")
        return None
    problem = folder_problem(dataset, data_dir)
    if problem:
        st.error(problem)
        return None
    return methods, RunConfig(dataset=dataset, data_dir=data_dir or None, backbone=backbone, image_size=image_size,
                              batch_size=batch_size, seed=seed, steps=int(budget) if budget_kind == "steps" else None,
                              max_seconds=float(budget) if budget_kind == "seconds" else None)


def pick_race(key: str = "race", select: str | None = None) -> str | None:
    """A past or current race from the store; ``select`` (a just-launched race) or the URL's goes first."""
    all_races = races(run_store().list())
    if not all_races:
        return None
    ids = [r.group_id for r in all_races]
    wanted = select or st.session_state.get(f"{key}_pick") or st.query_params.get("race")
    st.session_state[f"{key}_pick"] = wanted if wanted in ids else ids[0]
    described = {r.group_id: r.describe() for r in all_races}
    return st.selectbox("Race", ids, format_func=described.get, key=f"{key}_pick")


def race_panel(group_id: str, key: str = "race") -> None:
    """The race's lanes side by side and their live kNN curves; polls only while a run is active."""
    active = any(r.status in ACTIVE for r in run_store().list(group_id=group_id))

    @st.fragment(run_every=2.0 if active else None)
    def panel() -> None:
        store = run_store()
        race = races(store.list(group_id=group_id))[0]
        metrics = {label(r): store.metrics(r.id) for r in race.runs}
        times = {label(r): store.step_seconds(r.id) for r in race.runs}
        for row in range(0, len(race.runs), 4):
            for col, r in zip(st.columns(4), race.runs[row:row + 4]):
                ln = lane(r, metrics[label(r)], times[label(r)])
                col.markdown(f"**{r.method}** · {r.backbone}")
                col.progress(ln.progress, text=ln.describe())
        st.plotly_chart(overlay_figure(align_curves(metrics, times, "knn_top1", "seconds"), "online kNN top-1 (%)",
                                       "training seconds", "%", markers=True), key=f"{key}_live_knn")
        mine = [r for r in race.runs if r.status in ACTIVE and may_modify(r, actor())]
        if mine and st.button("Stop the race", key=f"{key}_stop"):
            for r in mine:
                stop(store, r.id, actor())  # checks the owner again
            st.toast("Stop requested: each run saves its checkpoint and ends after its current step.")
        if active and not race.active:
            st.rerun()  # the race ended: rerun once so polling stops and the results appear

    panel()
    if not active:
        comparison_table(list(races(run_store().list(group_id=group_id))[0].runs), f"{key}_result")
