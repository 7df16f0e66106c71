"""The starter pack: a reference run of every method on shapes, shipped and installed into fresh stores."""

import json
import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch

from conftest import open_app
from sslcore.methods import METHODS
from sslcore.runs import RunStore
from sslcore.runs.saved import from_run, load_run
from sslcore.runs import starter

PACK = starter.read_pack()


def test_the_pack_has_every_method_trained_with_todays_defaults():
    assert PACK is not None, "assets/starter/pack.json is missing: run `make starter-pack`"
    assert sorted(r["method"] for r in PACK["runs"]) == sorted(METHODS)
    for entry in PACK["runs"]:
        folder = starter.pack_dir() / entry["id"]
        config = json.loads((folder / "config.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
        expected = starter.pack_config(entry["method"])
        stale = "a default changed since the pack was built: run `make starter-pack`"
        assert config == json.loads(json.dumps(asdict(expected))), f"{entry['id']}: {stale}"
        defaults = METHODS[entry["method"]].Config(**{"image_size": expected.image_size, **expected.options})
        assert summary["method_config"] == json.loads(json.dumps(asdict(defaults))), f"{entry['id']}: {stale}"
        assert summary["steps"] == expected.steps and summary["provenance"]["command"].startswith("sslcore train")
        assert (folder / "checkpoint.safetensors").stat().st_size < 8 * 2**20  # small: the backbone in fp16


def test_a_fresh_store_lists_every_reference_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLCORE_STARTER_PACK", "1")
    store = RunStore(tmp_path)
    installed = starter.install_starter_pack(store)
    assert sorted(installed) == sorted(r["id"] for r in PACK["runs"])
    assert starter.install_starter_pack(store) == []  # once per pack version
    records = store.list()
    assert all(r.reference and r.status == "finished" and r.owner_label == "reference" for r in records)
    for r in records:
        assert r.summary["knn_top1"] is not None and store.metrics(r.id)["loss"][0][-1] == r.summary["steps"]
    method, cfg = load_run(store.run_dir("ref-shapes-simclr"))
    assert cfg.method == "simclr" and not method.training
    assert from_run(store.run_dir("ref-shapes-mae")).kind == "mae"  # the MAE page can reconstruct with it
    out = subprocess.run([sys.executable, "-m", "sslcore", "runs", "--out", str(tmp_path / "cli"), "--json"],
                         capture_output=True, text=True, timeout=120)
    listed = json.loads(out.stdout)  # nothing but JSON on stdout
    assert {r["id"] for r in listed} == set(installed) and all(r["reference"] for r in listed)


def test_the_reference_weights_are_the_trained_ones(tmp_path, monkeypatch):
    """The shipped backbone reproduces the pack's own kNN number (fp16 weights, same protocol)."""
    from sslcore.runs.evaluate import evaluate_run

    monkeypatch.setenv("SSLCORE_STARTER_PACK", "1")
    store = RunStore(tmp_path)
    starter.install_starter_pack(store)
    record = store.get("ref-shapes-simclr")
    result = evaluate_run(store.run_dir(record.id), "shapes")
    assert result["knn_top1"] == pytest.approx(record.summary["knn_top1"], abs=1.0)
    assert result["steps"] == record.summary["steps"]


def test_build_then_install(tmp_path, monkeypatch):
    small = starter.pack_config
    monkeypatch.setattr(starter, "pack_config", lambda m: replace(small(m), steps=2, train_size=128, knn_bank=50,
                                                                  knn_test=50))
    pack = starter.build_starter_pack(tmp_path / "pack", ["rotation", "mae"], log=lambda s: None)
    assert [r["id"] for r in pack["runs"]] == ["ref-shapes-rotation", "ref-shapes-mae"]
    state = starter.load_checkpoint(tmp_path / "pack" / "ref-shapes-rotation" / "checkpoint.safetensors")[0]
    assert state and all(k.startswith("backbone.") for k in state)  # heads are not shipped
    monkeypatch.setenv("SSLCORE_STARTER_PACK", "1")
    store = RunStore(tmp_path / "store")
    assert starter.install_starter_pack(store, tmp_path / "pack") == ["ref-shapes-rotation", "ref-shapes-mae"]
    method, _ = load_run(store.run_dir("ref-shapes-rotation"))  # heads at their seeded init, backbone the pack's
    backbone = method.backbone.state_dict()
    assert all(torch.equal(backbone[k.removeprefix("backbone.")].float(), v) for k, v in state.items())
    # Retraining one method keeps the others' runs in the pack, in the registry's order.
    mae_checkpoint = (tmp_path / "pack" / "ref-shapes-mae" / "checkpoint.safetensors").read_bytes()
    again = starter.build_starter_pack(tmp_path / "pack", ["rotation"], log=lambda s: None)
    assert [r["id"] for r in again["runs"]] == ["ref-shapes-rotation", "ref-shapes-mae"]
    assert (tmp_path / "pack" / "ref-shapes-mae" / "checkpoint.safetensors").read_bytes() == mae_checkpoint
    assert again["version"] != pack["version"]  # stores install the new pack
    with pytest.raises(ValueError, match="unknown methods"):
        starter.build_starter_pack(tmp_path / "pack", ["nope"], log=lambda s: None)


def test_compare_and_embeddings_show_the_reference_runs_on_a_fresh_install(monkeypatch):
    monkeypatch.setenv("SSLCORE_STARTER_PACK", "1")
    at = open_app("views/compare.py")
    options = at.multiselect(key="compare_runs").options
    assert len(options) == len(METHODS) and all("reference" in o for o in options)
    assert len(at.multiselect(key="compare_runs").value) == 2  # two compared at once by default
    at.switch_page("views/embeddings.py").run()
    at.radio(key="emb_src").set_value("my runs").run()
    assert not at.exception, [e.value for e in at.exception]
    run_labels = at.selectbox(key="emb_run").options
    assert len(run_labels) == len(METHODS) and all("reference" in label for label in run_labels)
