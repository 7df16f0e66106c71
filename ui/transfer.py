"""The Transfer planner's parts: the X-ray worked example, the pretrained run (picked, or queued and
watched), the labelled set with its label budget, and the evaluation as a background job.

The evaluation (minutes: a supervised network per label fraction, fine-tuning per fraction) runs on
the Embeddings page's scores queue (:func:`ui.embeddings.submit`); a fragment polls it only while it
runs, then shows the table and its reading.
"""

from __future__ import annotations

import time

import streamlit as st

from sslcore.eval import FineTuneConfig, percent
from sslcore.methods import METHODS
from sslcore.runs import ACTIVE, DONE, RunConfig, RunRecord
from sslcore.runs.config import default_backbone
from sslcore.runs.execute import CHECKPOINT
from sslcore.transfer import (XRAY_EXERCISE, XRAY_IN_THE_LAB, XRAY_PITFALL, XRAY_SITUATION, XRAY_STEPS, XRAY_WHY,
                              Domain, TransferPlan, TransferResult, evaluate_plan, home_domains, is_cross_domain,
                              reading)
from ui.embeddings import DataChoice, find_job, pick_dataset, submit
from ui.forms import folder_problem
from ui.panels import live_run
from ui.queue import submit_run
from ui.session import presets
from ui.state import run_store

FINISHED, QUEUE = "a finished run", "a new run"
FRACTIONS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
DEFAULT_FRACTIONS = [0.01, 0.1, 1.0]


# ---------------------------------------------------------------------------------------------
# the worked example
# ---------------------------------------------------------------------------------------------
def xray_case(key: str) -> None:
    st.markdown(XRAY_SITUATION)
    st.markdown(f"**Your turn.** {XRAY_EXERCISE}")
    st.text_area("Your plan (only for you: nothing is checked or stored)", key=f"{key}_sketch")
    with st.expander("The worked answer", expanded=False):
        for step in XRAY_STEPS:
            st.markdown(f"**{step.title}**  \n{step.body}")
        st.info(XRAY_WHY, icon=":material/lightbulb:")
        st.warning(XRAY_PITFALL, icon=":material/warning:")
    st.markdown("**The same workflow in this lab** (the *Your data* tab)")
    st.table([{"in the X-ray case": case, "in the lab": lab} for case, lab in XRAY_IN_THE_LAB])


# ---------------------------------------------------------------------------------------------
# step 1: the pretrained backbone
# ---------------------------------------------------------------------------------------------
def _trained_on(record: RunRecord) -> str:
    cfg = RunConfig.from_dict(record.config)
    return home_domains(cfg)[0].describe()


def _finished_runs() -> list[RunRecord]:
    runs = [r for r in run_store().list(status=DONE) if (run_store().run_dir(r.id) / CHECKPOINT).exists()]
    return sorted(runs, key=lambda r: not r.reference)  # the starter pack first: always there


def _pick_finished(key: str) -> RunRecord | None:
    runs = {r.id: r for r in _finished_runs()}
    if not runs:
        st.info("No finished run yet: queue one here or on the Train page.")
        return None
    queued = st.session_state.get(f"{key}_queued")
    if queued in runs and st.session_state.get(f"{key}_picked_queued") != queued:
        st.session_state[f"{key}_run"] = queued  # the run this session queued, once it has finished
        st.session_state[f"{key}_picked_queued"] = queued

    def label(run_id: str) -> str:
        r = runs[run_id]
        steps = r.summary.get("steps")
        who = "reference" if r.reference else f"by {r.owner_label}"
        return f"{run_id}: {r.method} on {_trained_on(r)}" + (f", {steps} steps" if steps else "") + f" ({who})"

    return runs[st.selectbox("Run", list(runs), format_func=label, key=f"{key}_run")]


def _queue_new(key: str) -> RunRecord | None:
    found = presets()
    methods = sorted(found.methods if found else METHODS)
    default_seconds = int(found.default_seconds) if found else 60
    with st.form(f"{key}_pretrain"):
        c1, c2, c3 = st.columns(3)
        method = c1.selectbox("Method", methods, index=methods.index("simclr") if "simclr" in methods else 0,
                              key=f"{key}_method")
        dataset = c2.radio("Unlabelled images", ["shapes", "digits", "folder"], horizontal=True, key=f"{key}_pdata")
        data_dir = c2.text_input("Folder on the server (flat, or root/<class>/*: labels are ignored)", "",
                                 key=f"{key}_pdir")
        seconds = c3.number_input("Training seconds", 10, 3600, default_seconds, step=10, key=f"{key}_seconds")
        go = st.form_submit_button("Queue the pretraining run", key=f"{key}_queue")
    if go:
        problem = folder_problem(dataset, data_dir) or ("Type the folder's path." if dataset == "folder"
                                                        and not data_dir else None)
        if problem:
            st.error(problem)
        else:
            cfg = RunConfig(method=method, backbone=default_backbone(method), dataset=dataset,
                            data_dir=data_dir or None, max_seconds=float(seconds))
            run_id = submit_run(cfg)
            if run_id is not None:
                st.session_state[f"{key}_queued"] = run_id
    run_id = st.session_state.get(f"{key}_queued")
    if run_id is None:
        st.caption("The run trains in the background queue; this page follows it and uses it when it has finished.")
        return None
    record = run_store().get(run_id)
    st.markdown(f"**Run {run_id}**: {record.method} on {_trained_on(record)}")
    live_run(run_id, f"{key}_live")
    if record.status in ACTIVE:
        return None
    if record.status not in DONE or not (run_store().run_dir(run_id) / CHECKPOINT).exists():
        st.warning("This run has no final checkpoint to transfer: queue another one.")
        return None
    return record


def pick_pretrained(key: str) -> RunRecord | None:
    """A finished run to transfer, or None (none yet, or the queued one still training)."""
    mode = st.radio("Pretrained backbone from", [FINISHED, QUEUE], horizontal=True, key=f"{key}_mode")
    return _pick_finished(key) if mode == FINISHED else _queue_new(key)


# ---------------------------------------------------------------------------------------------
# step 2: the labelled set and the label budget
# ---------------------------------------------------------------------------------------------
def pick_labelled(record: RunRecord, key: str) -> tuple[DataChoice | None, bool]:
    """The labelled set (None until it is usable) and whether it is another kind of image than the run's."""
    data = pick_dataset(key)
    if data is None:
        return None, False
    problem = folder_problem(data.name, data.data_dir or "")
    if problem:
        st.error(problem)
        return None, False
    cross = is_cross_domain(RunConfig.from_dict(record.config), Domain(data.name, data.data_dir))
    if cross:
        st.info(f"Cross-domain: {record.id} pretrained on {_trained_on(record)}, and these labels are another kind "
                "of image. The course warns that features often transfer poorly across domains: the result will "
                "show by how much, beside the same probe on the run's own data where it has labels.",
                icon=":material/swap_horiz:")
    return data, cross


def plan_form(record: RunRecord, data: DataChoice, cross: bool, key: str) -> TransferPlan | None:
    """The label budget and fine-tuning length; a plan when submitted."""
    steps = record.summary.get("steps") or record.config.get("steps")
    if steps:
        st.caption(f"The network from scratch trains for the run's own {steps} steps once per label fraction, in "
                   "the background: with a reference run, expect a few minutes.")
    with st.form(f"{key}_plan"):
        c1, c2, c3 = st.columns(3)
        fractions = c1.multiselect("Label fractions", FRACTIONS, DEFAULT_FRACTIONS, format_func=percent,
                                   key=f"{key}_fractions")
        labelled = c2.number_input("Labelled training images (at most; the X-ray case has 2,000)", 10, 50_000, 2000,
                                   step=100, key=f"{key}_labelled")
        test = c2.number_input("Test images (at most)", 10, 10_000, 1000, step=100, key=f"{key}_test")
        epochs = c3.number_input("Fine-tuning epochs", 1, 200, 30, key=f"{key}_epochs",
                                help="SimCLR fine-tunes 60 epochs with 1% of the labels, 30 with 10%.")
        same = c3.checkbox("Also probe the run's own data", True, key=f"{key}_home", disabled=not cross,
                           help="Only for a cross-domain plan: the domain gap as a number.")
        go = st.form_submit_button("Evaluate the transfer", type="primary", key=f"{key}_go")
    if not go:
        return None
    if not fractions:
        st.error("Choose at least one label fraction.")
        return None
    return TransferPlan(str(run_store().run_dir(record.id)), data.name, data_dir=data.data_dir,
                        fractions=tuple(fractions), labelled=int(labelled), test=int(test),
                        finetune=FineTuneConfig(epochs=int(epochs)), same_domain=bool(same))


def start(plan: TransferPlan, key: str) -> None:
    """Queue ``plan`` on the background scores queue (once per plan) and remember it for this session."""
    job_key = f"transfer|{plan!r}"
    submit("scores", job_key, evaluate_plan, plan, progress=True)
    st.session_state[f"{key}_job"] = job_key


# ---------------------------------------------------------------------------------------------
# step 3: the result
# ---------------------------------------------------------------------------------------------
def show_result(result: TransferResult, key: str) -> None:
    run = result.plan.run_dir.rstrip("/").rsplit("/", 1)[-1]
    st.markdown(f"**{run}**, pretrained on {result.pretrained_on} for {result.steps} steps, tested on "
                f"{result.probed_on}. Top-1 accuracy (%) on the held-out images: a linear probe and a fine-tune "
                "of the pretrained backbone, the same network trained from scratch on the same labels, and a "
                "linear probe on it at random init.")
    with st.container(key=f"{key}_result"):
        st.dataframe(result.table(), hide_index=True, key=f"{key}_table")
    lines = reading(result)
    if result.cross_domain:
        st.warning(lines.pop(0), icon=":material/swap_horiz:")
    st.markdown("\n".join(f"- {line}" for line in lines))
    if result.home:
        st.markdown("**The domain gap**: the frozen features against random ones, at home and away")
        with st.container(key=f"{key}_gap"):
            st.dataframe(result.domain_table(), hide_index=True, key=f"{key}_domain")
    with st.expander("How each number was measured"):
        for row in (*result.rows, *result.home):
            st.caption(f"{row.name}, {percent(row.fraction)}: {row.protocol}")


def result_panel(key: str) -> None:
    """The latest plan this session started: progress while it runs, then its table and reading."""
    job_key = st.session_state.get(f"{key}_job")
    job = find_job(job_key) if job_key else None
    if job is None:
        st.caption("Nothing evaluated yet: choose a run and a labelled set, then start the evaluation.")
        return
    waiting = not job.future.done()

    @st.fragment(run_every=1.0 if waiting else None)
    def panel() -> None:
        if not job.future.done():
            what = ("Evaluating in the background" if job.future.running()
                    else "Waiting for another scoring job to finish")
            st.progress(job.progress, text=f"{what}... {job.progress:.0%} ({time.monotonic() - job.started:.0f} s)")
            st.caption("You may leave this page: the evaluation goes on and its result waits here.")
            return
        if job.future.exception() is not None:
            st.error(f"The evaluation failed: {job.future.exception()}")
        else:
            show_result(job.future.result(), key)
        if waiting:
            st.rerun()  # done: rerun once so polling stops

    panel()
