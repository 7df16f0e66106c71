"""The queue: slots sized to the machine, fair order, caps, pausing, ownership, cancel, kill and resume."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace

import pytest

from sslcore.runs import DONE, RunConfig, RunStore
from sslcore.runs.dispatcher import ensure_dispatcher
from sslcore.runs.execute import TRAIN_STATE
from sslcore.runs.scheduler import (OPERATOR, Actor, QueueError, SlotPolicy, cancel, delete, expected_seconds,
                                    fair_order, grant, queue, resume, stop, submit)

TINY = RunConfig(dataset="shapes", steps=3, max_seconds=None, batch_size=16, train_size=128, knn_bank=50,
                 knn_test=50)
ALICE, BOB, CAROL = Actor("p-a", "Alice"), Actor("p-b", "Bob"), Actor("p-c", "Carol")
TEACHER = Actor("p-t", "Teacher", teacher=True)
ONE_SLOT = SlotPolicy(slots=1, threads=2, devices=("cpu",), cores=2)


def wait_for(store: RunStore, run_id: str, statuses, timeout: float = 120.0):
    deadline = time.time() + timeout
    while (record := store.get(run_id)).status not in statuses:
        assert time.time() < deadline, (record.status, record.error)
        time.sleep(0.2)
    return record


@pytest.mark.parametrize("cores, gpus, slots, threads", [
    (1, 0, 1, 1), (2, 0, 1, 2), (4, 0, 1, 3), (8, 0, 3, 2), (16, 0, 3, 5), (32, 0, 7, 4), (16, 2, 2, 7), (8, 8, 8, 1)])
def test_slots_from_the_hardware_never_oversubscribe(cores, gpus, slots, threads):
    policy = SlotPolicy.for_machine(cores=cores, gpus=gpus, env={})
    assert (policy.slots, policy.threads) == (slots, threads)
    assert policy.slots * policy.threads <= cores
    assert policy.devices == tuple(f"cuda:{i}" for i in range(slots)) if gpus else set(policy.devices) == {"cpu"}


def test_slots_from_the_environment():
    assert SlotPolicy.for_machine(cores=8, gpus=0, env={"SSLCORE_SLOTS": "2"}).threads == 3  # 7 cores for slots
    policy = SlotPolicy.for_machine(cores=2, gpus=0, env={"SSLCORE_SLOTS": "4", "SSLCORE_THREADS_PER_SLOT": "2"})
    assert (policy.slots, policy.threads) == (4, 1)  # never more threads than the cores hold
    with pytest.raises(ValueError, match="SSLCORE_SLOTS must be a positive integer"):
        SlotPolicy.for_machine(cores=2, gpus=0, env={"SSLCORE_SLOTS": "zero"})


def test_nobodys_second_run_starts_before_everyones_first(tmp_path):
    store = RunStore(tmp_path)
    a = submit(store, [TINY] * 3, ALICE)
    b = submit(store, [TINY], BOB)
    c = submit(store, [TINY] * 2, CAROL)
    order = [r.id for r in fair_order(store.list())]
    assert order == [a[0], b[0], c[0], a[1], c[1], a[2]]
    # Alice's first starts; Bob's second, queued after all of them, still goes before Alice's third.
    assert [g.run_id for g in grant(store, ONE_SLOT)] == [a[0]]
    b2 = submit(store, [TINY], BOB)[0]
    assert [r.id for r in fair_order(store.list())] == [b[0], c[0], a[1], c[1], b2, a[2]]
    # The queue view numbers them and estimates each start from the budgets ahead.
    entries = queue(store, ONE_SLOT)
    assert [(e.record.id, e.position) for e in entries[:3]] == [(a[0], 0), (b[0], 1), (c[0], 2)]
    starts = [e.starts_in for e in entries[1:]]
    assert starts == sorted(starts) and starts[0] > 0


def test_one_owner_is_first_come_first_served(tmp_path):
    store = RunStore(tmp_path)
    ids = submit(store, [TINY] * 3) + submit(store, [TINY])
    assert [r.id for r in fair_order(store.list())] == ids


def test_per_participant_cap_refuses_with_a_reason(tmp_path):
    store = RunStore(tmp_path)
    submit(store, [TINY, TINY], ALICE, max_queued=2)
    with pytest.raises(QueueError, match="Alice has 2 runs waiting and may queue at most 2"):
        submit(store, [TINY], ALICE, max_queued=2)
    submit(store, [TINY], BOB, max_queued=2)  # the cap is per participant
    submit(store, [TINY] * 5, OPERATOR, max_queued=2)  # the machine's own user is not capped
    assert len(store.list(status=("queued",))) == 8


def test_slots_pausing_and_foreground_runs(tmp_path):
    store = RunStore(tmp_path)
    first, second = submit(store, [TINY, TINY])
    assert [g.run_id for g in grant(store, ONE_SLOT)] == [first]
    assert grant(store, ONE_SLOT) == []  # the one slot is taken
    store.set_status(first, "finished", only_if=("running",))
    store.set_setting("paused", True)
    assert grant(store, ONE_SLOT) == []  # paused: nothing starts
    store.set_setting("paused", False)
    assert [g.run_id for g in grant(store, ONE_SLOT)] == [second]
    store.set_status(second, "finished", only_if=("running",))
    # A foreground run at the head keeps the slot for its own process; the dispatcher waits behind it.
    fg = submit(store, [TINY], launcher="foreground")[0]
    bg = submit(store, [TINY])[0]
    assert grant(store, ONE_SLOT) == []
    assert [g.run_id for g in grant(store, ONE_SLOT, run_id=fg)] == [fg]
    assert store.get(bg).status == "queued"


def test_a_participant_cannot_touch_anothers_run(tmp_path):
    store = RunStore(tmp_path)
    mine = submit(store, [TINY], ALICE)[0]
    for action in (stop, cancel, delete):
        with pytest.raises(PermissionError, match="belongs to Alice: only they or the teacher can"):
            action(store, mine, BOB)
    assert store.get(mine).status == "queued"
    cancel(store, mine, TEACHER)
    record = store.get(mine)
    assert record.status == "cancelled" and "cancelled by Teacher (teacher) before it started" in record.error
    with pytest.raises(PermissionError):
        resume(store, mine, BOB)
    ref = store.create(asdict(TINY), reference=True, run_id="ref-shapes-simclr")
    store.set_status(ref, "finished")
    with pytest.raises(PermissionError, match="reference run"):
        delete(store, ref, TEACHER)


def test_cancel_queued_and_nothing_to_cancel(tmp_path):
    store = RunStore(tmp_path)
    run_id = submit(store, [TINY], ALICE)[0]
    cancel(store, run_id, ALICE)
    assert store.get(run_id).status == "cancelled"
    with pytest.raises(QueueError, match="nothing to cancel"):
        cancel(store, run_id, ALICE)


def test_estimates_follow_the_budget():
    assert expected_seconds({"method": "simclr", "max_seconds": 60}, 0, 0.0, {}) == pytest.approx(60 * 1.15 + 10)
    assert expected_seconds({"method": "simclr", "max_seconds": 60}, 100, 30.0, {}) == pytest.approx(30 * 1.15)
    assert expected_seconds({"method": "simclr", "steps": 100, "max_seconds": None}, 0, 0.0,
                            {"simclr": 10.0}) == pytest.approx(10 * 1.15 + 10)


@pytest.mark.slow
def test_cancel_ends_a_running_workers_process_group(tmp_path):
    store = RunStore(tmp_path)
    run_id = submit(store, [replace(TINY, steps=None, max_seconds=300)], ALICE)[0]
    ensure_dispatcher(store)
    record = wait_for(store, run_id, ("running",))
    deadline = time.time() + 60
    while not store.metrics(run_id).get("loss"):
        assert time.time() < deadline
        time.sleep(0.2)
    pid = store.get(run_id).pid
    cancel(store, run_id, ALICE)
    deadline = time.time() + 20
    while _alive(pid):
        assert time.time() < deadline, "the worker outlived its cancel"
        time.sleep(0.2)
    record = store.get(run_id)
    assert record.status == "cancelled" and record.error == "cancelled by Alice"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_a_killed_worker_leaves_an_interrupted_run_that_resumes_to_its_budget(tmp_path):
    store = RunStore(tmp_path)
    cfg = replace(TINY, steps=300, train_size=256, checkpoint_every_seconds=0.5, knn_every_seconds=1e9)
    run_id = submit(store, [cfg])[0]
    ensure_dispatcher(store)
    wait_for(store, run_id, ("running",))
    deadline = time.time() + 120
    while not (store.run_dir(run_id) / TRAIN_STATE).exists() or store.last_step(run_id)[0] < 30:
        assert time.time() < deadline and store.get(run_id).status == "running", store.get(run_id)
        time.sleep(0.1)
    os.killpg(store.get(run_id).pid, signal.SIGKILL)  # kill -9: no handler runs, nothing is written
    record = wait_for(store, run_id, DONE, timeout=30)
    assert record.status == "interrupted" and "resume continues from its last checkpoint" in record.error
    killed_at = store.last_step(run_id)[0]
    # The CLI resumes it through the queue; the worker continues from the last train state.
    out = subprocess.run([sys.executable, "-m", "sslcore", "resume", run_id, "--out", str(tmp_path), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    record = wait_for(store, run_id, DONE, timeout=180)
    assert record.status == "finished", record.error
    resumed_at = record.summary["resumed_at"]
    assert len(resumed_at) == 1 and 0 < resumed_at[0] <= killed_at
    assert record.summary["steps"] == 300 and record.resumes == 1
    steps = store.metrics(run_id)["loss"][0]
    assert steps == sorted(set(steps)) and steps[-1] == 300  # every step once: nothing logged twice


@pytest.mark.long
def test_runs_submitted_at_once_each_get_the_steps_of_a_solo_run(tmp_path):
    """Four runs queued at once on one slot train one after another, each with the whole machine
    (the time budget counts training only), so each reaches the steps of the same run trained alone.
    Long: a budget short enough for CI is within the noise of a process's first seconds; the 30 s
    version users see is benchmarks/queue_load.py."""
    cfg = replace(TINY, steps=None, max_seconds=10.0, train_size=1024, batch_size=64, knn_bank=200, knn_test=100)
    solo_store, store = RunStore(tmp_path / "solo"), RunStore(tmp_path / "four")
    solo = submit(solo_store, [cfg])[0]
    ensure_dispatcher(solo_store)
    solo_steps = wait_for(solo_store, solo, DONE).summary["steps"]
    ids = [submit(store, [replace(cfg, seed=i)], actor)[0] for i, actor in enumerate((ALICE, BOB, CAROL, TEACHER))]
    ensure_dispatcher(store)
    records = [wait_for(store, i, DONE, timeout=240) for i in ids]
    assert all(r.status == "finished" for r in records), [r.error for r in records]
    assert min(r.summary["steps"] for r in records) >= 0.8 * solo_steps, (solo_steps, [r.summary["steps"] for r in records])
    assert {r.slot for r in records} <= set(range(SlotPolicy.for_machine().slots))
