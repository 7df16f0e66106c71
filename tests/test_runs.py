import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest
import torch

from sslcore.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sslcore.paths import atomic_write
from sslcore.runs.store import RunStore, pid_alive

CONFIG = {"method": "simclr", "dataset": "shapes", "backbone": "convnet", "steps": 3}


def test_create_list_and_folder(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG)
    record = store.get(run_id)
    assert record.status == "queued" and record.config == CONFIG
    assert json.loads((store.run_dir(run_id) / "config.json").read_text()) == CONFIG
    assert [r.id for r in store.list()] == [run_id]
    # A new store object on the same folder (a server restart) still lists the run.
    assert RunStore(tmp_path).get(run_id).config == CONFIG


def test_metrics_round_trip_and_since(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG)
    for step in range(1, 6):
        store.log_metrics(run_id, step, step * 0.1, {"loss": 1.0 / step, "lr": 0.1})
    m = store.metrics(run_id)
    assert m["loss"][0] == [1, 2, 3, 4, 5] and m["loss"][1][1] == pytest.approx(0.5)
    assert store.metrics(run_id, since_step=3)["loss"][0] == [4, 5]
    store.export_metrics(run_id)
    exported = json.loads((store.run_dir(run_id) / "metrics.json").read_text())
    assert exported["lr"]["step"] == [1, 2, 3, 4, 5]


def test_steps_logged_together_commit_together(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG)
    store.log_steps(run_id, [(1, 0.1, {"loss": 2.0}), (2, 0.2, {"loss": 1.5, "lr": 0.1})])
    assert store.metrics(run_id) == {"loss": ([1, 2], [2.0, 1.5]), "lr": ([2], [0.1])}
    with pytest.raises(ValueError):  # a value that is no number: none of the batch's rows lands
        store.log_steps(run_id, [(3, 0.3, {"loss": 1.0}), (4, 0.4, {"loss": "x"})])
    with pytest.raises(sqlite3.IntegrityError):  # the database refuses a row: the rows before it go too
        store.log_steps(run_id, [(3, 0.3, {"loss": 1.0}), (None, 0.4, {"loss": 0.9})])
    assert store.metrics(run_id)["loss"] == ([1, 2], [2.0, 1.5])


def test_stop_request_and_status(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG)
    store.set_status(run_id, "running", pid=os.getpid())
    assert not store.stop_requested(run_id)
    store.request_stop(run_id)
    assert store.stop_requested(run_id) and store.get(run_id).status == "stopping"
    with pytest.raises(ValueError, match="unknown status"):
        store.set_status(run_id, "exploded")


def test_dead_processes_are_reaped(tmp_path):
    store = RunStore(tmp_path)
    running, waiting, reused = store.create(CONFIG), store.create(CONFIG), store.create(CONFIG)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.set_status(running, "running", pid=proc.pid)
    store.set_status(waiting, "queued", pid=proc.pid)  # a foreground `sslcore train` waiting for a slot
    assert not pid_alive(proc.pid)
    # A live pid that started at another time is a reused pid, not the run's process.
    store.set_status(reused, "running", pid=os.getpid())
    store._write("UPDATE runs SET pid_start = pid_start + 1 WHERE id = ?", (reused,))
    by_id = {r.id: r for r in store.list()}
    assert by_id[running].status == "interrupted" and "resume continues from its last checkpoint" in by_id[running].error
    assert by_id[waiting].status == "cancelled" and "terminal ended" in by_id[waiting].error
    assert by_id[reused].status == "interrupted"


def test_an_older_store_gains_the_new_columns(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "runs.db")
    db.executescript("""CREATE TABLE runs (id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL,
        status TEXT NOT NULL, method TEXT NOT NULL, dataset TEXT NOT NULL, backbone TEXT NOT NULL,
        config TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '{}', error TEXT NOT NULL DEFAULT '', pid INTEGER,
        stop_requested INTEGER NOT NULL DEFAULT 0, group_id TEXT NOT NULL DEFAULT '');
        INSERT INTO runs (id, created, updated, status, method, dataset, backbone, config)
        VALUES ('20261101-000000-simclr-abcdef', 1, 1, 'finished', 'simclr', 'shapes', 'convnet', '{}');""")
    db.commit()
    db.close()
    record = RunStore(tmp_path).list()[0]
    assert record.status == "finished" and record.owner_label == "local" and not record.reference


def test_run_ids_cannot_escape_the_store(tmp_path):
    store = RunStore(tmp_path)
    for bad in ("../x", "a/b", "..", ""):
        with pytest.raises(ValueError):
            store.run_dir(bad)


def test_concurrent_writer_and_readers(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG)
    errors = []

    def write():
        try:
            for step in range(200):
                store.log_metrics(run_id, step, 0.0, {"loss": float(step)})
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def read():
        try:
            for _ in range(100):
                RunStore(tmp_path).metrics(run_id)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.metrics(run_id)["loss"][0] == list(range(200))


def test_delete(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG)
    store.set_status(run_id, "finished")
    store.delete(run_id)
    assert store.list() == [] and not (tmp_path / run_id).exists()


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.bin"
    atomic_write(path, b"old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]  # no temp file left behind


def test_checkpoint_round_trip_and_fp16(tmp_path):
    state = {"w": torch.randn(3, 4), "shared": torch.ones(2), "count": torch.tensor(7)}
    state["alias"] = state["shared"]  # shared storage must not break saving
    save_checkpoint(tmp_path / "c.safetensors", state, {"step": 5}, dtype=torch.float16)
    loaded, meta = load_checkpoint(tmp_path / "c.safetensors")
    assert meta == {"step": 5}
    assert torch.allclose(loaded["w"], state["w"], atol=1e-2) and loaded["w"].dtype == torch.float32
    assert loaded["count"].item() == 7


def test_checkpoint_rejects_pickles_and_truncation(tmp_path):
    evil = tmp_path / "evil.safetensors"
    torch.save({"w": torch.ones(1)}, evil)  # a pickle in disguise
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(evil)
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, {"w": torch.ones(100)}, {})
    good.write_bytes(good.read_bytes()[:-50])
    with pytest.raises(CheckpointError):
        load_checkpoint(good)
