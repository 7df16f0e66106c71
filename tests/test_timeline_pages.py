"""Scrubbing a run's timeline in AppTest: the Embeddings, DINO attention and MAE pages load the point the
"Training step" slider names, and what they show is that point's."""

import json
import re
from dataclasses import asdict

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import open_app, run_until
from sslcore.data import load_split
from sslcore.runs import RunConfig, RunStore
from sslcore.runs.execute import execute
from sslcore.runs.saved import from_run

# 20 steps: the timeline keeps steps 0, 2, 5 and 10 (random init, 10%, 25%, 50%); the final checkpoint is step 20.
TINY = dict(steps=20, max_seconds=None, batch_size=16, train_size=128, knn_bank=50, knn_test=50,
            knn_every_seconds=1000)
POINTS = ["0 (random init)", "2 (10%)", "5 (25%)", "10 (50%)", "20 (final)"]


def shapes_sample() -> Image.Image:
    """The pages' "shapes" image 0 (ui.images.dataset_sample)."""
    return Image.fromarray(load_split("shapes", "test", 64, n=200).images[0].permute(1, 2, 0).numpy())


def train(**cfg) -> str:
    store = RunStore()
    config = RunConfig(**{**TINY, **cfg})
    run_id = store.create(asdict(config))
    execute(config, store, run_id, log=lambda s: None)
    return run_id


def open_page(page: str) -> AppTest:
    at = open_app(page, timeout=180)
    ok(at)
    return at


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def image_captions(at: AppTest) -> list[str]:
    return [i.caption for el in at.get("image") for i in el.proto.imgs]


def scrub(at: AppTest, key: str, point: str) -> AppTest:
    at.select_slider(key=f"{key}_step").set_value(point).run()
    ok(at)
    return at


@pytest.mark.slow  # trains a 20-step DINO ViT
def test_dino_attention_at_random_init_and_final():
    from sslcore.viz.attention import attention_panels, resize_longer_side

    run_id = train(method="dino", backbone="vit_tiny", batch_size=8)
    at = open_page("views/attention.py")
    at.radio(key="att_model_src").set_value("my runs").run()
    at.radio(key="att_image_src").set_value("shapes").run()
    ok(at)
    slider = at.select_slider(key="att_model_step")
    assert slider.options == POINTS and slider.value == "20 (final)"  # the final model by default
    image = resize_longer_side(shapes_sample(), 64)  # twice the training size

    def expected_heads(step: int | None) -> list[str]:
        vit = from_run(RunStore().run_dir(run_id), step).vit
        p = attention_panels(vit, image, len(vit.blocks) - 1, 0.6, "nearest")  # the page's defaults: last block
        return [f"head {i + 1}: 60% of its attention on {k.mean():.0%} of the image" for i, k in enumerate(p.kept)]

    shown = {}
    for point, step, source in [("0 (random init)", 0, f"run {run_id} (dino, vit_tiny, step 0)"),
                                ("20 (final)", None, f"run {run_id} (dino, vit_tiny)")]:
        scrub(at, "att_model", point)
        assert source in [c.value for c in at.caption]
        captions = image_captions(at)
        assert any(c.startswith("input 64x64") for c in captions)
        shown[point] = [c for c in captions if re.match(r"head \d+: ", c)]
        assert shown[point] == expected_heads(step)  # the panels are that point's attention
    # At random init each head spreads its attention almost evenly (60% of it on ~59% of the image); 20 steps
    # (the teacher is an EMA of the student) already concentrate some heads a little.
    assert shown["0 (random init)"] != shown["20 (final)"], shown


def psnr(at: AppTest) -> float:
    return float(at.metric[0].value.removesuffix(" dB"))


@pytest.mark.slow  # trains a 20-step MAE
def test_mae_reconstructions_improve_from_random_init_to_final():
    from sslcore.viz.mae import mae_reconstruct, prepare_image

    run_id = train(method="mae", backbone="vit_tiny", batch_size=8)
    at = open_page("views/mae.py")
    at.radio(key="mae_model_src").set_value("my runs").run()
    at.radio(key="mae_image_src").set_value("shapes").run()
    ok(at)
    assert at.select_slider(key="mae_model_step").options == POINTS
    image = shapes_sample()
    values = {}
    for point, step, source in [("0 (random init)", 0, f"run {run_id} (mae, vit_tiny, step 0)"),
                                ("20 (final)", None, f"run {run_id} (mae, vit_tiny)")]:
        scrub(at, "mae_model", point)
        assert source in [c.value for c in at.caption]
        assert "reconstruction (pixels)" in image_captions(at)
        mae = from_run(RunStore().run_dir(run_id), step).model
        short = mae.cfg.image_size if getattr(mae.backbone, "dynamic_img_size", False) else None
        expected = mae_reconstruct(mae, prepare_image(mae, image, short), 0.75, "random", 0, short_side=short)
        values[point] = psnr(at)
        assert values[point] == pytest.approx(expected.psnr, abs=0.006)  # shown with two decimals
    # Random init predicts noise; 20 steps already learn the images' smooth colours.
    assert values["20 (final)"] > values["0 (random init)"] + 1.0


def scores(at: AppTest):
    at.button(key="emb_go").click().run()
    run_until(at, lambda a: len(a.dataframe) > 0, seconds=300, check=ok)
    return at.dataframe[0].value.set_index("score").astype(float)  # cells are "57.3"


def pca_of(at: AppTest) -> list[float]:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return [x for trace in spec["data"] for x in trace["x"]]


@pytest.mark.long  # trains a tiny run, then scores two points of it with their random-init reference (a minute)
def test_embeddings_step_zero_scores_as_random_init_and_the_final_step_does_not():
    from ui.embeddings import _points_cache

    run_id = train(method="simclr")
    at = open_page("views/embeddings.py")  # "my runs" is the first source
    at.select_slider(key="emb_n").set_value(500).run()
    assert at.select_slider(key="emb_step").options == POINTS
    assert at.select_slider(key="emb_step").value == "20 (final)"

    scrub(at, "emb", "0 (random init)")
    assert any(c.value.startswith(f"run {run_id} at step 0 on shapes") for c in at.caption)
    init_xy = pca_of(at)
    at0 = scores(at)
    assert list(at0.columns) == ["step 0 %", "random init %"] and len(at0) == 4
    # Step 0 is the run's random init (kept in float16): it scores as the float32 random init does.
    assert (at0["step 0 %"] - at0["random init %"]).abs().max() <= 1.0, at0

    scrub(at, "emb", "20 (final)")
    assert any(c.value.startswith(f"run {run_id} at step 20 (final) on shapes") for c in at.caption)
    assert pca_of(at) != init_xy  # projections are cached per point: the final point has its own
    final = scores(at)
    assert list(final.columns) == ["run %", "random init %"]
    # The same protocol, the same random init: its scores match step 0's reference; the trained run's differ.
    assert final["random init %"].tolist() == at0["random init %"].tolist()
    assert (final["run %"] - final["random init %"]).abs().max() > 1.0, final
    assert {k.split("|")[0] for k in _points_cache()} == {f"run:{run_id}@0", f"run:{run_id}@final"}


def test_runs_without_a_timeline_show_no_slider():
    from sslcore.checkpoint import save_checkpoint
    from sslcore.runs.build import build_method

    cfg = RunConfig(method="dino", backbone="vit_tiny", image_size=32, steps=1, max_seconds=None)
    store = RunStore()
    run_id = store.create(asdict(cfg))  # an older run: a final checkpoint and no timeline/ folder
    state = build_method(cfg, torch.device("cpu")).state_dict()
    save_checkpoint(store.run_dir(run_id) / "checkpoint.safetensors", state, {"config": asdict(cfg), "summary": {}})
    store.set_status(run_id, "finished")
    for page, key in [("views/attention.py", "att_model"), ("views/embeddings.py", "emb")]:
        at = open_page(page)
        if key == "att_model":
            at.radio(key="att_model_src").set_value("my runs").run()
            ok(at)
            assert f"run {run_id} (dino, vit_tiny)" in [c.value for c in at.caption]
        assert not [s for s in at.select_slider if s.key == f"{key}_step"]
