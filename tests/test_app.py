"""Every page renders in AppTest, and the Train form drives a real run into the Runs table."""

import time

import pytest

from conftest import open_app

PAGES = ["views/home.py", "views/augmentations.py", "views/train.py", "views/runs.py", "views/attention.py",
         "views/mae.py", "views/concepts.py", "views/compare.py", "views/pretext.py",
         "views/embeddings.py", "views/practice.py", "views/collapse.py", "views/lessons.py", "views/transfer.py"]


@pytest.fixture
def at():
    return open_app()


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(at, page):
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value


def test_augmentations_show_pairs_with_correlations(at):
    at.switch_page("views/augmentations.py")
    at.run()
    captions = [i.caption for element in at.get("image") for i in element.proto.imgs]
    assert sum("r=" in c for c in captions) == 6  # six pairs, each with its correlation


def test_concepts_reproduce_presets(at):
    at.switch_page("views/concepts.py")
    at.run()
    values = [m.value for m in at.metric]
    assert values[:2] == ["0.992", "-0.600"]
    at.selectbox[0].select("[1,0], [0.9,0.4], [-0.5,0.8]").run()
    assert [m.value for m in at.metric][:2] == ["0.914", "-0.530"]


def test_train_form_launches_a_run_that_lands_in_runs(at):
    at.switch_page("views/train.py")
    at.run()
    at.radio(key="train_bk").set_value("steps")
    at.number_input(key="train_budget").set_value(15)
    at.select_slider(key="train_bs").set_value(32)
    at.number_input(key="train_knn_bank").set_value(300)
    at.number_input(key="train_knn_test").set_value(100)
    at.button[0].click()  # the form's submit button
    at.run()
    assert not at.exception
    from ui.state import run_store

    deadline = time.time() + 180
    while (runs := run_store().list()) == [] or runs[0].status not in ("finished", "failed"):
        assert time.time() < deadline
        time.sleep(1)
    assert runs[0].status == "finished", runs[0].error
    assert runs[0].summary["knn_protocol"] == {"k": 20, "t": 0.1, "bank_size": 300, "test_size": 100}
    at.run()
    assert any("finished" in m.value for m in at.markdown)
    at.switch_page("views/runs.py")
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["status"].tolist() == ["finished"] and table["kNN top-1 %"].tolist()[0] != ""


def test_train_form_offers_mae_only_vit_backbones(at):
    at.switch_page("views/train.py")
    at.run()
    assert at.selectbox(key="train_bb").value == "convnet"
    at.selectbox(key="train_method").select("mae").run()
    backbone = at.selectbox(key="train_bb_vit")
    assert backbone.value == "vit_tiny" and all(o.startswith("vit") for o in backbone.options)


def test_train_form_follows_each_methods_default_run(at):
    """Image size, batch and budget switch to the chosen method's default run on shapes (DEFAULT_RUNS)."""
    at.switch_page("views/train.py")
    at.run()
    def form():
        return at.select_slider(key="train_size").value, at.select_slider(key="train_bs").value, \
            at.number_input(key="train_budget").value
    assert form() == (32, 128, 1200)
    at.selectbox(key="train_method").select("jigsaw").run()
    assert form() == (64, 128, 400)
    assert any("tile_resize 0.25" in c.value for c in at.caption)
    at.selectbox(key="train_method").select("mae").run()
    assert form() == (32, 64, 1500)
    at.selectbox(key="train_method").select("simclr").run()
    assert form() == (32, 128, 1200)


def test_train_form_offers_dino_centrings_as_choices(at):
    at.switch_page("views/train.py")
    at.run()
    at.selectbox(key="train_method").select("dino").run()
    centering = at.selectbox(key="train_dino_centering")
    assert centering.value == "mean" and centering.options == ["mean", "sinkhorn", "none"]


def test_runs_page_shows_the_mae_preview(at):
    from dataclasses import asdict

    from sslcore.runs import RunConfig
    from sslcore.runs.execute import execute
    from ui.state import run_store

    cfg = RunConfig(method="mae", backbone="vit_tiny", steps=3, max_seconds=None, batch_size=16, train_size=64,
                    knn_bank=100, knn_test=50)
    execute(cfg, run_store(), run_store().create(asdict(cfg)), log=lambda s: None)
    at.switch_page("views/runs.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [i.caption for element in at.get("image") for i in element.proto.imgs]
    assert any("held-out images at step 3" in c and "pasted back" in c for c in captions), captions
