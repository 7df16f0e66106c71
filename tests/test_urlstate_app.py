"""Shareable links in the running app: a link opens the exact view, a changed knob lands in the URL (with v=1),
and a bad link says what it ignored while the widget keeps its default."""

from dataclasses import asdict

import pytest
from streamlit.elements.lib import policies
from streamlit.testing.v1 import AppTest

from conftest import open_app
from sslcore.urlstate import Choice, pages



@pytest.fixture
def at():
    return open_app()


@pytest.fixture
def duplication_warnings(monkeypatch):
    """Streamlit's "default value and Session State" log line (once per process): re-armed and recorded."""
    said = []
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    monkeypatch.setattr(policies._LOGGER, "warning", lambda msg, *args, **kw: said.append(msg % args))
    return said


def open_link(at: AppTest, page: str, **params: str) -> AppTest:
    """Open ``page`` as a link would: the URL first, then the page's first run."""
    at.query_params.clear()
    at.query_params.update(params)
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def widget(at: AppTest, key: str):
    for kind in ("selectbox", "radio", "select_slider", "multiselect", "slider", "number_input", "toggle", "checkbox"):
        try:
            return getattr(at, kind)(key=key)
        except KeyError:
            continue
    return None


@pytest.mark.parametrize("page, name", [("views/augmentations.py", "augmentations"), ("views/concepts.py", "concepts"),
                                        ("views/attention.py", "attention"), ("views/mae.py", "mae"),
                                        ("views/train.py", "train"), ("views/compare.py", "compare")])
def test_schemas_match_the_widgets(at, page, name):
    """Opened from the menu, every page keeps a clean URL (the schema's defaults are the widgets'), and every
    fixed choice a link can name is one of its widget's options."""
    open_link(at, page)
    assert at.query_params == {} and warnings(at) == []
    checked = []
    for field in pages()[name].fields:
        shown = widget(at, field.key)
        if isinstance(field, Choice) and not callable(field.options) and shown is not None and field.key != "att_view":
            options = field.options.values() if isinstance(field.options, dict) else field.options
            assert set(map(str, options)) <= set(shown.options), field.key
            checked.append(field.key)
    assert checked


def test_mae_link_round_trip_history_and_menu(at, duplication_warnings):
    open_link(at, "views/mae.py", ratio="0.5", mask="block", seed="11", photo="coffee", v="1")
    assert at.slider(key="mae_ratio").value == 0.5
    assert at.radio(key="mae_strategy").value == "block"
    assert at.number_input(key="mae_seed").value == 11
    assert at.selectbox(key="mae_image_photo").value == "coffee"
    assert warnings(at) == [] and duplication_warnings == []  # config: the link overriding defaults is intended
    at.radio(key="mae_strategy").set_value("grid").run()
    assert at.query_params == {"photo": "coffee", "ratio": "0.5", "mask": "grid", "seed": "11", "v": "1"}
    # Back in the browser's history: an older URL than the one published is restored.
    at.query_params.update(mask="random", seed="12")
    at.run()
    assert (at.radio(key="mae_strategy").value, at.number_input(key="mae_seed").value) == ("random", 12)
    assert at.query_params == {"photo": "coffee", "ratio": "0.5", "seed": "12", "v": "1"}  # random: the default
    # The menu clears the URL on a page switch (AppTest keeps it: clear it as the browser does): defaults again.
    at.query_params.clear()
    at.switch_page("views/home.py").run()
    at.switch_page("views/mae.py").run()
    assert (at.slider(key="mae_ratio").value, at.number_input(key="mae_seed").value) == (0.75, 0)
    assert at.query_params == {}


def test_mae_bad_values_warn_and_keep_defaults(at):
    open_link(at, "views/mae.py", ratio="3", mask="grid", short="100", run="keep-me", v="1")
    assert at.slider(key="mae_ratio").value == 0.75  # dropped, not clamped to 0.95
    assert at.radio(key="mae_strategy").value == "grid"
    assert at.select_slider(key="mae_short").value == 64  # a size this model does not offer
    assert warnings(at) == ["The link's value `ratio=3` is out of range (0.05 to 0.95) and was ignored.",
                            "The link's value `short=100` does not fit this model (64, 128, 192, 256 px) and was "
                            "ignored."]
    assert at.query_params == {"run": "keep-me", "mask": "grid", "v": "1"}  # another feature's param stays


def test_a_link_of_another_version_is_ignored(at):
    open_link(at, "views/mae.py", ratio="0.5", mask="grid", v="2")
    assert (at.slider(key="mae_ratio").value, at.radio(key="mae_strategy").value) == (0.75, "random")
    assert len(at.warning) == 1 and "`v=2`" in at.warning[0].value
    assert at.query_params == {}


def test_augmentations_link(at):
    open_link(at, "views/augmentations.py", recipe="mild", scale="0.3,0.9", hue="0.25", pairs="3", photo="chelsea",
              v="1")
    assert at.selectbox(key="aug_recipe").value == "mild"
    assert at.slider(key="aug_scale").value == (0.3, 0.9)
    assert at.slider(key="aug_h").value == 0.25
    assert at.slider(key="aug_n").value == 3
    assert at.selectbox(key="aug_photo").value == "chelsea"
    assert at.slider(key="aug_s").value == 0.4  # what the link leaves out is the recipe's own
    at.selectbox(key="aug_recipe").set_value("byol").run()  # sliders follow where the recipe's values differ
    assert (at.slider(key="aug_scale").value, at.slider(key="aug_s").value) == ((0.08, 1.0), 0.2)
    assert at.slider(key="aug_h").value == 0.25  # both recipes say 0.1: the link's value stays, as an edit would
    assert at.query_params == {"photo": "chelsea", "recipe": "byol", "hue": "0.25", "pairs": "3", "v": "1"}
    at.radio(key="aug_pipeline").set_value("a method's own pipelines").run()
    assert at.slider(key="aug_n").value == 3  # one key for both pipelines' pair count
    assert at.query_params["pipeline"] == "method" and at.query_params["v"] == "1"
    at.selectbox(key="aug_method").set_value("byol").run()
    assert at.query_params == {"photo": "chelsea", "pipeline": "method", "method": "byol", "pairs": "3", "v": "1"}
    assert warnings(at) == []


def test_concepts_link_opens_the_tab_and_presets_still_reset_coordinates(at):
    open_link(at, "views/concepts.py", tab="masking", ratio="0.5", seed="3", preset="2", ax="5", temp="0.5",
              images="digits", v="1")
    assert at.session_state["concepts_tab"] == "MAE masking"
    assert (at.slider(key="mask_ratio").value, at.number_input(key="mask_seed").value) == (0.5, 3)
    assert at.selectbox(key="cos_preset").value == "[1,0], [0.9,0.4], [-0.5,0.8]"
    assert (at.number_input(key="cos_ax").value, at.number_input(key="cos_ay").value) == (5.0, 0.0)
    assert at.slider(key="nce_t").value == 0.5 and at.selectbox(key="overlap_data").value == "digits"
    at.slider(key="ema_noise").set_value(0.1).run()
    assert at.query_params == {"tab": "masking", "preset": "2", "ax": "5", "temp": "0.5", "noise": "0.1",
                               "ratio": "0.5", "seed": "3", "images": "digits", "v": "1"}
    at.selectbox(key="cos_preset").set_value("a=[2,1], a+=[3,2], b=[-2,1]").run()
    assert (at.number_input(key="cos_ax").value, at.number_input(key="cos_ay").value) == (2.0, 1.0)
    assert "preset" not in at.query_params and "ax" not in at.query_params
    assert [m.value for m in at.metric][:2] == ["0.992", "-0.600"]


def test_attention_link_checks_block_and_head_against_the_model(at):
    open_link(at, "views/attention.py", block="2", head="3", mass="0.3", upsample="bilinear", opacity="0.4",
              contour="false", size="128", v="1")
    assert at.slider(key="att_block").value == 2
    assert at.selectbox(key="att_view").value == "head 3"
    assert (at.slider(key="att_mass").value, at.slider(key="att_alpha").value) == (0.3, 0.4)
    assert at.radio(key="att_mode").value == "bilinear" and at.toggle(key="att_contour").value is False
    assert at.select_slider(key="att_size").value == 128 and warnings(at) == []
    at.slider(key="att_mass").set_value(0.8).run()
    assert at.query_params == {"size": "128", "block": "2", "mass": "0.8", "head": "3", "upsample": "bilinear",
                               "opacity": "0.4", "contour": "false", "v": "1"}
    # The lab checkpoint has 6 blocks and 3 heads: the schema's wide bounds pass, the model's do not.
    open_link(at, "views/attention.py", block="9", head="5", mass="2", v="1")
    assert (at.slider(key="att_block").value, at.selectbox(key="att_view").value) == (6, "head mean")
    assert at.slider(key="att_mass").value == 0.6
    assert warnings(at) == ["The link's value `mass=2` is out of range (0.1 to 1) and was ignored.",
                            "The link's value `block=9` does not fit this model (blocks 1 to 6) and was ignored.",
                            "The link's value `head=5` does not fit this model (3 heads) and was ignored."]
    assert at.query_params == {}  # block 6 is this model's default: no need to say it


def test_train_link_fills_the_form_and_keeps_the_run(at, duplication_warnings):
    open_link(at, "views/train.py", method="byol", data="digits", backbone="resnet18_cifar", size="48", batch="64",
              budget_kind="steps", budget="500", lr="0.01", seed="5", knn_k="10", knn_stages="false", v="1")
    assert at.selectbox(key="train_method").value == "byol"
    assert at.selectbox(key="train_data").value == "digits"
    assert at.selectbox(key="train_bb").value == "resnet18_cifar"
    assert (at.select_slider(key="train_size").value, at.select_slider(key="train_bs").value) == (48, 64)
    assert (at.radio(key="train_bk").value, at.number_input(key="train_budget").value) == ("steps", 500)
    assert (at.number_input(key="train_lr").value, at.number_input(key="train_seed").value) == (0.01, 5)
    assert at.number_input(key="train_knn_k").value == 10 and at.checkbox(key="train_knn_stages").value is False
    assert warnings(at) == [] and duplication_warnings == []
    at.query_params["run"] = "20260101-000000-simclr-abcdef"  # set by a launch; the link feature leaves it be
    at.selectbox(key="train_method").set_value("dino").run()
    assert at.query_params["method"] == "dino" and at.query_params["v"] == "1" and at.query_params["lr"] == "0.01"
    assert at.query_params["run"] == "20260101-000000-simclr-abcdef"
    open_link(at, "views/train.py", data="folder", budget="0", v="1")
    # The budget falls back to the method's default run on shapes (DEFAULT_STEPS), not to the link's 0.
    assert at.selectbox(key="train_data").value == "shapes" and at.number_input(key="train_budget").value == 1200
    assert len(warnings(at)) == 2


def test_compare_link_picks_runs_and_race_knobs(at):
    from sslcore.runs import RunConfig
    from ui.state import run_store

    store = run_store()
    ids = [store.create(asdict(RunConfig(method=m))) for m in ("simclr", "byol", "dino")]
    for run_id in ids:
        store.set_status(run_id, "finished")
    open_link(at, "views/compare.py", runs=f"{ids[2]},{ids[0]}", methods="dino,moco", budget="30", data="digits",
              race="race-none", v="1")
    assert at.multiselect(key="compare_runs").value == [ids[2], ids[0]]
    assert at.multiselect(key="race_methods").value == ["dino", "moco"]
    assert (at.number_input(key="race_budget").value, at.selectbox(key="race_data").value) == (30, "digits")
    at.radio(key="compare_x").set_value("seconds").run()
    assert at.query_params == {"race": "race-none", "runs": f"{ids[2]},{ids[0]}", "x": "seconds",
                               "methods": "dino,moco", "data": "digits", "budget": "30", "v": "1"}
    open_link(at, "views/compare.py", runs=f"{ids[1]},gone-run", v="1")
    assert at.multiselect(key="compare_runs").value == [ids[1]]
    assert warnings(at) == [f"The link's value `runs={ids[1]},gone-run` names some that are not in this run store: "
                            "they were left out."]
