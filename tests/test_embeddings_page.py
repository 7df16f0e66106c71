"""The Embeddings page in AppTest: PCA at once, UMAP swapped in when its background job ends, and
scores computed on demand beside their protocols."""

import json
import threading
from dataclasses import asdict

import pytest

from conftest import open_app, run_until



@pytest.fixture
def at():
    return open_app("views/embeddings.py", timeout=180)


def figure_title(app) -> str:
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    return spec["layout"]["title"]["text"]


def test_without_runs_the_page_explains(at):
    assert any("No finished run" in i.value for i in at.info)


@pytest.mark.slow  # the first UMAP in a process compiles numba code
def test_random_init_pca_then_umap_then_scores(at):
    at.radio(key="emb_src").set_value("random init").run()
    at.select_slider(key="emb_n").set_value(500).run()
    assert not at.exception, [e.value for e in at.exception]
    assert figure_title(at) == "PCA of 500 embeddings (standard output)"
    at.radio(key="emb_proj").set_value("UMAP").run()
    run_until(at, lambda a: figure_title(a) == "UMAP of 500 embeddings (standard output)")
    assert not any("computing in the background" in c.value for c in at.caption)
    at.button(key="emb_go").click().run()
    run_until(at, lambda a: len(a.dataframe) > 0)
    table = at.dataframe[0].value
    assert table["score"].tolist() == ["weighted kNN (k=20, T=0.1)", "linear probe, 1% labels",
                                       "linear probe, 10% labels", "linear probe, 100% labels"]
    assert list(table.columns) == ["score", "random init %"] and all(float(v) > 0 for v in table["random init %"])
    assert any("linear probe: logistic regression" in c.value and "1% of labels" in c.value for c in at.caption)


def pick_lab_checkpoint(app, name="dino_vit_tiny"):
    from sslcore.models.load import shipped_names

    app.radio(key="emb_src").set_value("lab checkpoint").run()
    assert app.selectbox(key="emb_ship").options == shipped_names()  # DINO and MAE (its encoder) alike
    app.selectbox(key="emb_ship").set_value(name).run()
    assert not app.exception, [e.value for e in app.exception]


def test_lab_checkpoint_features(at):
    pick_lab_checkpoint(at)
    assert figure_title(at) == "PCA of 1000 embeddings (standard output)"
    assert any(c.value == "shipped dino_vit_tiny" for c in at.caption)
    pick_lab_checkpoint(at, "mae_vit_tiny")
    assert figure_title(at) == "PCA of 1000 embeddings (standard output)"


@pytest.mark.long  # two ViTs embed 6,000 images each at 64 px: 2 minutes here
def test_lab_checkpoint_scores_beside_its_random_init(at):
    pick_lab_checkpoint(at)
    at.button(key="emb_go").click().run()
    run_until(at, lambda a: len(a.dataframe) > 0, seconds=300)
    table = at.dataframe[0].value
    assert list(table.columns) == ["score", "checkpoint %", "random init %"] and len(table) == 4
    assert all(table["checkpoint %"]) and all(table["random init %"])
    # The trained ViT and its random-init copy are different models: their scores differ somewhere.
    assert table["checkpoint %"].tolist() != table["random init %"].tolist()


@pytest.mark.long  # trains a tiny run, then scores it with its random-init reference (CI keeps the random-init
def test_run_scores_with_random_init_reference(at):  # scores here and a run's against its init in test_stages)
    from sslcore.runs import RunConfig
    from sslcore.runs.execute import execute
    from sslcore.runs import RunStore

    cfg = RunConfig(steps=3, batch_size=32, train_size=256, knn_every_seconds=1000)
    store = RunStore()
    execute(cfg, store, store.create(asdict(cfg)), log=lambda s: None)
    at.run()
    assert figure_title(at) == "PCA of 1000 embeddings (standard output)"
    at.button(key="emb_go").click().run()
    run_until(at, lambda a: len(a.dataframe) > 0, seconds=300)
    table = at.dataframe[0].value
    assert len(table) == 4 and all(table["run %"]) and all(table["random init %"])


@pytest.mark.long  # scores every stage of a run and of its random init (the engine's side: tests/test_stages.py)
def test_run_knn_stage_by_stage_beside_random_init(at):
    from sslcore.runs import RunConfig
    from sslcore.runs.execute import execute
    from sslcore.runs import RunStore

    cfg = RunConfig(method="relpos", steps=3, batch_size=32, train_size=256, knn_every_seconds=1000)
    store = RunStore()
    execute(cfg, store, store.create(asdict(cfg)), log=lambda s: None)
    at.run()
    at.button(key="emb_stages").click().run()
    run_until(at, lambda a: len(a.dataframe) > 0, seconds=300)
    table = at.dataframe[0].value
    assert table["stage"].tolist() == ["1 of 4", "2 of 4", "3 of 4", "4 of 4"]
    assert table["channels"].tolist() == [32, 64, 128, 256]
    assert (table["gain (points)"] - (table["run %"] - table["random init %"])).abs().max() < 0.11
    assert any("features: stage 2 of 4 (64 channels" in c.value for c in at.caption)
    # The plot can show any stage's features.
    readout = at.selectbox(key="emb_readout")
    assert readout.options[0].startswith("standard output (256 features)") and len(readout.options) == 5
    readout.set_value(1).run()
    assert not at.exception, [e.value for e in at.exception]
    assert figure_title(at) == "PCA of 1000 embeddings (stage 2 of 4)"


def test_background_jobs_run_in_order_on_a_daemon_thread():
    from ui.embeddings import WorkQueue

    work = WorkQueue("test-queue")
    order: list[int] = []
    futures = [work.submit(order.append, i) for i in range(3)]
    failed = work.submit(lambda: 1 / 0)
    assert [f.result(timeout=10) for f in futures] == [None] * 3 and order == [0, 1, 2]
    assert isinstance(failed.exception(timeout=10), ZeroDivisionError)
    # A daemon thread: quitting the app does not wait for a projection or probe still running.
    assert [t.daemon for t in threading.enumerate() if t.name == "test-queue"] == [True]
