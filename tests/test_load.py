"""Model sources: shipped exports, runs, local checkpoint files (never executed), and their errors."""

import argparse
import io
import json
import shlex
from dataclasses import asdict
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save as save_safetensors

from sslcore.checkpoint import CheckpointError, save_checkpoint
from sslcore.cli import main as cli
from sslcore.export import export_run, train_command
from sslcore.models import load
from sslcore.runs import RunConfig
from sslcore.runs.build import build_method
from sslcore.runs.saved import from_run


def tiny_vit(**kw):
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, patch_size=8,
                             depth=2, **kw).eval()


def pth_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def same_features(a, b, size=32, atol=1e-5):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.allclose(a.forward_features(x), b.forward_features(x), atol=atol)


def fake_run(tmp_path, method="dino", image_size=32, **options) -> tuple[Path, torch.nn.Module, RunConfig]:
    """A run folder as ``execute`` leaves it, without training (the weights are the random init)."""
    cfg = RunConfig(method=method, backbone="vit_tiny", image_size=image_size, steps=3, max_seconds=None,
                    options=options)
    m = build_method(cfg, torch.device("cpu")).eval()
    if method == "dino":  # make the teacher differ from the student, so picking the wrong one shows
        with torch.no_grad():
            for p in m.teacher_backbone.parameters():
                p.add_(0.01 * torch.randn_like(p))
    run_dir = tmp_path / "runs" / "r1"
    save_checkpoint(run_dir / "checkpoint.safetensors", m.state_dict(),
                    {"config": asdict(cfg), "summary": {"steps": 3, "seconds": 1.5, "knn_top1": 41.0, "device": "cpu",
                                                       "precision": "bf16", "method_config": asdict(m.cfg)},
                     "format": "sslcore-method-v1"})
    return run_dir, m, cfg


# ---------------------------------------------------------------------------------------------
# local files: prefixes and wrappers
# ---------------------------------------------------------------------------------------------
WRAPS = {
    "plain": lambda sd: sd,
    "module.": lambda sd: {f"module.{k}": v for k, v in sd.items()},
    "backbone.": lambda sd: {f"backbone.{k}": v for k, v in sd.items()},
    "module.backbone. + DINO head": lambda sd: {**{f"module.backbone.{k}": v for k, v in sd.items()},
                                                "module.head.last_layer.weight": torch.zeros(4, 4)},
    "encoder.": lambda sd: {f"encoder.{k}": v for k, v in sd.items()},
    "state_dict entry": lambda sd: {"state_dict": sd, "epoch": 3},
    "model entry": lambda sd: {"model": sd},
    "teacher entry": lambda sd: {"teacher": {f"backbone.{k}": v for k, v in sd.items()}},
}


FLAT = ["plain", "module.", "backbone.", "module.backbone. + DINO head", "encoder."]  # safetensors is flat


@pytest.mark.parametrize("wrap,fmt", [(w, "pth") for w in WRAPS] + [(w, "safetensors") for w in FLAT])
def test_prefixes_and_wrappers(wrap, fmt):
    ref = tiny_vit()
    obj = WRAPS[wrap](ref.state_dict())
    if fmt == "safetensors":
        data = save_safetensors({k: v.contiguous() for k, v in obj.items()})
    else:
        data = pth_bytes(obj)
    loaded = load.load_local_file(data, f"ckpt.{fmt}")
    assert loaded.kind == "vit" and same_features(loaded.model, ref)
    assert loaded.model.patch_embed.patch_size == (8, 8) and len(loaded.model.blocks) == 2
    assert any("head count assumed 3" in n for n in loaded.notes)


def test_teacher_is_chosen_over_student():
    teacher, student = tiny_vit(), tiny_vit()
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(-1)
    both = {**{f"student.backbone.{k}": v for k, v in student.state_dict().items()},
            **{f"teacher.backbone.{k}": v for k, v in teacher.state_dict().items()}}
    assert same_features(load.load_local_file(pth_bytes(both), "x.pth").model, teacher)
    # DINO's own training checkpoint: separate dicts plus the script's argparse arguments.
    official = {"student": {f"module.backbone.{k}": -v for k, v in teacher.state_dict().items()},
                "teacher": {f"backbone.{k}": v for k, v in teacher.state_dict().items()},
                "epoch": 100, "args": argparse.Namespace(arch="vit_small", patch_size=8)}
    assert same_features(load.load_local_file(pth_bytes(official), "checkpoint.pth").model, teacher)


@pytest.mark.parametrize("kw", [dict(reg_tokens=4, no_embed_class=True), dict(init_values=1e-5),
                                dict(global_pool="avg", fc_norm=True), dict(class_token=False, global_pool="avg"),
                                dict(qkv_bias=False), dict(mlp_ratio=2.0)])
def test_architecture_read_from_tensors(kw):
    ref = tiny_vit(**kw)
    loaded = load.vit_from_state_dict(ref.state_dict(), "x")
    assert same_features(loaded.model, ref)
    assert loaded.model.num_prefix_tokens == ref.num_prefix_tokens


def test_head_count_override_and_classifier_dropped():
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=32, patch_size=8,
                            depth=2, num_heads=4).eval()
    loaded = load.vit_from_state_dict(ref.state_dict(), "x", num_heads=4)
    assert loaded.model.blocks[0].attn.num_heads == 4 and same_features(loaded.model, ref)
    assert any("classifier" in n for n in loaded.notes)


# ---------------------------------------------------------------------------------------------
# bad files: clear errors, never code
# ---------------------------------------------------------------------------------------------
class WritesAFile:
    """Unpickling this calls exec, which writes ``path``: what a malicious checkpoint does."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').write('pwned')",)


def test_random_like_keeps_the_architecture_and_redraws_every_weight():
    trained = tiny_vit()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)  # far from any init
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    fresh, again = load.random_like(trained, seed=3), load.random_like(trained, seed=3)
    assert fresh.state_dict().keys() == before.keys() and not fresh.training
    for k, v in fresh.state_dict().items():
        assert v.shape == before[k].shape and not torch.equal(v, before[k]), k
        torch.testing.assert_close(v, again.state_dict()[k])  # seeded
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in before.items())  # the original is untouched
    assert fresh.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 17, 192)
    with pytest.raises(CheckpointError, match="timm ViT"):
        load.random_like(torch.nn.Linear(2, 2))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned.txt"
    data = pth_bytes({"model": tiny_vit().state_dict(), "payload": WritesAFile(marker)})
    # The payload is real: an unsafe load runs it.
    torch.load(io.BytesIO(data), weights_only=False)
    assert marker.exists()
    marker.unlink()
    for name in ("evil.pth", "evil.pt"):
        with pytest.raises(CheckpointError, match="never executes code"):
            load.load_local_file(data, name)
    assert not marker.exists()


def test_pickled_custom_object_is_refused():
    data = pth_bytes({"cfg": Path("/tmp"), "w": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="refuses"):
        load.read_checkpoint_bytes(data, "obj.pth")


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_truncated_files(fmt):
    sd = tiny_vit().state_dict()
    data = save_safetensors(sd) if fmt == "safetensors" else pth_bytes(sd)
    with pytest.raises(CheckpointError, match="truncated"):
        load.load_local_file(data[: len(data) // 2], f"cut.{fmt}")
    with pytest.raises(CheckpointError, match="truncated"):
        load.load_local_file(data[:5], f"cut.{fmt}")


def test_wrong_keys_shapes_kinds_and_sizes(monkeypatch):
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=0).state_dict()
    with pytest.raises(CheckpointError, match="no ViT.*patch_embed"):
        load.load_local_file(pth_bytes(resnet), "resnet.pth")
    sd = tiny_vit().state_dict()
    del sd["blocks.1.attn.qkv.weight"]
    with pytest.raises(CheckpointError, match="missing key.*blocks.1.attn.qkv.weight"):
        load.load_local_file(pth_bytes(sd), "holes.pth")
    sd = tiny_vit().state_dict()
    sd["pos_embed"] = sd["pos_embed"][:, :7]
    with pytest.raises(CheckpointError, match="not a square grid"):
        load.load_local_file(pth_bytes(sd), "pos.pth")
    with pytest.raises(CheckpointError, match="holds a list"):
        load.load_local_file(pth_bytes([torch.zeros(1)]), "list.pth")
    with pytest.raises(CheckpointError, match="no tensors"):
        load.load_local_file(pth_bytes({"epoch": 3}), "empty.pth")
    with pytest.raises(CheckpointError, match="is empty"):
        load.load_local_file(b"", "nothing.pth")
    with pytest.raises(CheckpointError, match="use a .safetensors"):
        load.load_local_file(b"abc", "weights.onnx")
    monkeypatch.setattr(load, "MAX_CHECKPOINT_BYTES", 100)
    with pytest.raises(CheckpointError, match="the limit is"):
        load.load_local_file(b"x" * 101, "big.pth")


def test_export_config_that_does_not_fit_names_the_mismatch():
    vit = tiny_vit()
    config = {"format": load.SHIPPED_FORMAT, "kind": "vit", "method": "dino", "backbone": "vit_small",
              "image_size": 32, "options": {}}
    data = save_safetensors(vit.state_dict(), metadata={"sslcore": json.dumps(config)})
    with pytest.raises(CheckpointError, match="shape mismatch.*cls_token"):
        load.load_local_file(data, "wrong.safetensors")


# ---------------------------------------------------------------------------------------------
# runs, export, shipped
# ---------------------------------------------------------------------------------------------
def test_from_run_shows_the_dino_teacher(tmp_path):
    run_dir, method, _ = fake_run(tmp_path)
    loaded = from_run(run_dir)
    assert loaded.kind == "vit" and same_features(loaded.model, method.teacher_backbone)
    assert not same_features(loaded.model, method.backbone)


def test_export_round_trip_shipped_and_local(tmp_path, monkeypatch):
    run_dir, method, cfg = fake_run(tmp_path)
    assets = tmp_path / "assets"
    monkeypatch.setenv("SSLCORE_ASSETS", str(assets))
    assert load.shipped_names() == []
    fallback = load.default_model("vit")
    assert "No shipped DINO ViT" in fallback.notes[0] and fallback.source.startswith("random-init vit_tiny")

    config = export_run(run_dir, assets / "dino_test.safetensors", fp16=True, metrics={"attention_in_box": 0.5},
                        note="Trained on a 2-core CPU.")
    assert config["kind"] == "vit" and config["dtype"] == "float16"
    assert config["provenance"]["metrics"] == {"knn_top1": 41.0, "attention_in_box": 0.5}
    assert config["provenance"]["command"] == train_command(cfg)
    assert config["provenance"]["method_config"] == json.loads(json.dumps(asdict(method.cfg)))  # defaults too
    note = (assets / "dino_test.md").read_text()
    assert train_command(cfg) in note and "knn_top1: 41.0" in note and "\nTrained on a 2-core CPU.\n" in note
    assert json.loads((assets / "dino_test.json").read_text()) == config
    assert load.shipped_names("vit") == ["dino_test"] and load.shipped_names("mae") == []
    assert load.load_shipped("dino_test").notes == (f"trained by `{train_command(cfg)}`", "Trained on a 2-core CPU.")
    # fp16 weights: the teacher's features within fp16 rounding, and clearly not the student's.
    for loaded in (load.load_shipped("dino_test"), load.default_model("vit"),
                   load.load_local_file((assets / "dino_test.safetensors").read_bytes(), "dino_test.safetensors")):
        assert loaded.kind == "vit" and same_features(loaded.model, method.teacher_backbone, atol=2e-2)
        assert not same_features(loaded.model, method.backbone, atol=2e-2)
    with pytest.raises(CheckpointError, match="no shipped checkpoint 'nope'"):
        load.load_shipped("nope")


def test_export_refuses_large_files_and_writes_nothing(tmp_path, monkeypatch):
    run_dir, _, _ = fake_run(tmp_path)
    # vit_tiny: 10.8 MB in fp32, 5.4 MB in fp16; a 6 MB limit refuses one and takes the other.
    monkeypatch.setattr("sslcore.export.MAX_SHIPPED_BYTES", 6 * 2**20)
    out = tmp_path / "assets" / "big.safetensors"
    with pytest.raises(ValueError, match="the limit is"):
        export_run(run_dir, out, fp16=False, max_bytes=2**20)
    assert not out.parent.exists() or not any(out.parent.iterdir())
    with pytest.raises(SystemExit, match="sslcore export: .*limit"):
        cli(["export", "--run", str(run_dir), "--out", str(out)])
    assert not out.exists()
    assert cli(["export", "--run", str(run_dir), "--out", str(out), "--fp16"]) == 0
    assert 5 * 2**20 < out.stat().st_size < 6 * 2**20


def test_train_command_is_the_runs_command(tmp_path):
    """The provenance command, run again, makes a run with the very same config."""
    store = tmp_path / "store"
    args = ["train", "--method", "dino", "--backbone", "vit_tiny", "--dataset", "shapes", "--train-size", "64",
            "--steps", "1", "--batch-size", "8", "--lr", "0.001", "--knn-every", "1000", "--knn-bank", "100",
            "--knn-test", "50", "--option", "local_crops=2", "--out", str(store)]
    assert cli(args) == 0
    (first,) = [p for p in store.iterdir() if p.is_dir()]
    cfg = json.loads((first / "config.json").read_text())
    command = train_command(RunConfig.from_dict(cfg))
    assert command.startswith("sslcore train --method dino --dataset shapes --backbone vit_tiny")
    assert "--knn-bank 100 --knn-test 50" in command
    assert cli([*shlex.split(command)[1:], "--out", str(store)]) == 0
    (second,) = [p for p in store.iterdir() if p.is_dir() and p != first]
    assert json.loads((second / "config.json").read_text()) == cfg


def test_run_archive_holds_every_file_of_the_run(tmp_path):
    import zipfile

    from sslcore.export import run_archive

    run = tmp_path / "20261206-000000-simclr-abc123"
    (run / "timeline").mkdir(parents=True)
    files = {"config.json": b'{"method": "simclr"}', "checkpoint.safetensors": bytes(range(256)) * 64,
             "metrics.json": b"{}" * 500}
    for name, data in files.items():
        (run / name).write_bytes(data)
    (run / ".lock").write_bytes(b"")
    with zipfile.ZipFile(io.BytesIO(run_archive(run))) as z:
        assert sorted(z.namelist()) == sorted(f"{run.name}/{n}" for n in files)  # no folders, no hidden files
        assert all(z.read(f"{run.name}/{n}") == data for n, data in files.items())
        kinds = {i.filename.split("/")[1]: i.compress_type for i in z.infolist()}
    assert kinds["checkpoint.safetensors"] == zipfile.ZIP_STORED and kinds["metrics.json"] == zipfile.ZIP_DEFLATED


def test_train_command_refuses_what_the_cli_cannot_say():
    with pytest.raises(ValueError, match="warmup"):
        train_command(RunConfig(warmup=0.2))


# ---------------------------------------------------------------------------------------------
# MAE with its decoder: official layout, HF wrapper
# ---------------------------------------------------------------------------------------------
def test_official_mae_layout_rebuilds_encoder_and_decoder():
    from sslcore.methods import create_method
    from sslcore.models import create_backbone

    torch.manual_seed(0)
    mae = create_method("mae", create_backbone("vit_tiny", 32), 32).eval()
    official = {k.removeprefix("backbone."): v for k, v in mae.state_dict().items()}
    official["decoder_pos_embed"] = torch.zeros(1, 65, 128)  # fixed sin-cos table, recomputed by sslcore
    loaded = load.load_local_file(pth_bytes({"model": official}), "mae_visualize_vit_tiny.pth")
    assert loaded.kind == "mae" and not loaded.model.cfg.norm_pix_loss
    assert any("decoder heads assumed 4" in n for n in loaded.notes)
    images, mask = torch.rand(2, 3, 32, 32), (torch.rand(2, 64).argsort(1) < 48).float()  # 8x8 grid of 4 px
    torch.testing.assert_close(loaded.model.reconstruct(images, mask).pred, mae.reconstruct(images, mask).pred)
    assert same_features(loaded.vit, mae.backbone)
    del official["decoder_embed.weight"]
    with pytest.raises(CheckpointError, match="incomplete MAE decoder"):
        load.load_local_file(pth_bytes(official), "cut_decoder.pth")


def test_hf_mae_wrapper_applies_the_requested_mask():
    transformers = pytest.importorskip("transformers")  # optional extra: runs where it is installed
    from sslcore.augment import normalize

    torch.manual_seed(0)
    cfg = transformers.ViTMAEConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=128, decoder_hidden_size=32,
                                    decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                                    decoder_intermediate_size=64)
    hf = transformers.ViTMAEForPreTraining(cfg).eval()
    wrapped = load.HFMAE(hf)
    images, mask = torch.rand(2, 3, 32, 32), (torch.rand(2, 16).argsort(1) < 11).float()
    rec = wrapped.reconstruct(images, mask)
    assert torch.equal(rec.mask, mask) and rec.pred.shape == (2, 16, 192) and rec.grid == (4, 4)
    # HF's own path with noise that hides the same patches gives the same predictions.
    hf.config.mask_ratio = 11 / 16
    with torch.no_grad():
        out = hf(pixel_values=normalize(images), noise=mask + 0.5 * torch.rand(2, 16))
    assert torch.equal(out.mask, mask)
    torch.testing.assert_close(rec.pred, out.logits)
