"""The Transfer planner in AppTest: the X-ray case, then the flow on a tiny run and a small labelled
folder, evaluated in the background and read back as a table and sentences."""

import subprocess
import sys
from dataclasses import asdict

from conftest import ROOT, open_app, run_until
from test_transfer import TINY, labelled_folder

PAGE = "views/transfer.py"


def result_table(app):
    """The result table (the domain-gap table is a dataframe too), or None."""
    for frame in app.dataframe:
        if "labels" in frame.value.columns and "best" in frame.value.columns:
            return frame.value
    return None


def tiny_run(**overrides) -> str:
    from sslcore.runs import RunConfig, RunStore
    from sslcore.runs.execute import execute

    store = RunStore()  # the app's store: SSLCORE_HOME is per test (conftest)
    cfg = RunConfig(method="simclr", **{**TINY, **overrides})
    run_id = store.create(asdict(cfg))
    execute(cfg, store, run_id, log=lambda s: None)
    return run_id


def test_without_runs_the_case_still_teaches():
    at = open_app(PAGE)
    assert at.title[0].value == "Transfer planner"
    assert any("5,000,000 chest X-rays" in m.value for m in at.markdown)
    assert any("No finished run yet" in i.value for i in at.info)
    assert any(c.value.startswith("Nothing evaluated yet") for c in at.caption)
    lab_map = at.table[0].value
    assert list(lab_map.columns) == ["in the X-ray case", "in the lab"] and len(lab_map) == 6
    assert lab_map.iloc[0, 0] == "5,000,000 unlabelled X-rays"
    assert [e.label for e in at.expander][:1] == ["The worked answer"]


def test_the_flow_on_a_small_labelled_folder(tmp_path):
    run_id = tiny_run()
    folder = labelled_folder(tmp_path / "colours")
    at = open_app(PAGE)
    assert at.selectbox(key="tr_run").value == run_id
    at.radio(key="tr_data").set_value("folder").run()
    at.text_input(key="tr_dir").set_value(str(folder)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(i.value.startswith(f"Cross-domain: {run_id} pretrained on shapes") for i in at.info)
    at.multiselect(key="tr_fractions").set_value([0.25, 1.0])
    at.number_input(key="tr_labelled").set_value(100)
    at.number_input(key="tr_test").set_value(50)
    at.number_input(key="tr_epochs").set_value(2)
    at.button(key="tr_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_until(at, lambda a: result_table(a) is not None, seconds=240)

    table = result_table(at)
    assert table["labels"].tolist() == ["25% (12 images)", "100% (48 images)"]
    scores = ["pretrained, fine-tuned %", "pretrained, probed %", "from scratch %", "random init, probed %"]
    assert list(table.columns) == ["labels", *scores, "best"]
    for _, row in table.iterrows():
        values = [float(row[c]) for c in scores]
        assert all(0 <= v <= 100 for v in values)
        assert all(abs(v * 12 / 100 - round(v * 12 / 100)) < 0.01 for v in values)  # 12 test images
        top = max(values)
        assert row["best"] == " = ".join(c[:-2] for c, v in zip(scores, values) if v == top)
    # The sentences read the same numbers.
    reading = next(m.value for m in at.markdown if "With 25% of the labels (12 images)" in m.value)
    for _, row in table.iterrows():
        assert f"{max(float(row[c]) for c in scores):.1f}%" in reading
    assert any(w.value.startswith("Cross-domain: the backbone was pretrained on shapes and is tested on the folder "
                                  "'colours'") for w in at.warning)
    domain = next(f.value for f in at.dataframe if "gain (points)" in f.value.columns)
    assert domain["data"].tolist() == ["shapes", "the folder 'colours'"] * 2
    # 100 shapes, 10 per class: 25% keeps round(2.5) = 2 of each
    assert domain["labels"].tolist() == ["25% (20 images)", "25% (12 images)", "100% (100 images)",
                                         "100% (48 images)"]
    assert "Same backbone, same 100% of the labels: on its own data (shapes)" in reading


def test_queue_a_pretraining_run_on_a_folder(tmp_path):
    from sslcore.runs import RunStore
    from sslcore.runs.scheduler import Actor, cancel

    at = open_app(PAGE)
    at.radio(key="tr_mode").set_value("a new run").run()
    at.radio(key="tr_pdata").set_value("folder")
    at.text_input(key="tr_pdir").set_value(str(tmp_path / "missing"))
    at.button(key="tr_queue").click().run()
    assert any("is not a folder on the server" in e.value for e in at.error)
    assert RunStore().list() == []

    folder = labelled_folder(tmp_path / "unlabelled", per_class=4)
    at.text_input(key="tr_pdir").set_value(str(folder))
    at.number_input(key="tr_seconds").set_value(10)
    at.button(key="tr_queue").click().run()
    assert not at.exception, [e.value for e in at.exception]
    try:
        [record] = RunStore().list()
        assert (record.method, record.dataset, record.config["data_dir"], record.config["max_seconds"]) == (
            "simclr", "folder", str(folder), 10.0)
        assert any(m.value.startswith(f"**Run {record.id}**: simclr on the folder 'unlabelled'") for m in at.markdown)
        assert any("Once a run is chosen" in c.value for c in at.caption)  # step 2 waits for it
    finally:
        for r in RunStore().list(status=("queued", "running")):
            cancel(RunStore(), r.id, Actor(teacher=True))


def test_page_is_thin_and_the_engine_has_no_streamlit():
    assert len((ROOT / PAGE).read_text().splitlines()) <= 120
    assert 'st.Page("views/transfer.py", title="Transfer planner"' in (ROOT / "app.py").read_text()
    code = "import sys, sslcore.transfer; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
