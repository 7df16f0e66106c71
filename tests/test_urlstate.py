"""Page state in links: every schema round-trips, defaults stay out of the URL, bad values are named and dropped."""

import subprocess
import sys

import pytest

from sslcore.urlstate import (RESERVED, VERSION, Bool, Choice, Choices, Float, Floats, Int, PageSchema, decode,
                              default_of, encode, field_for, pages, widget_default)

PAGES = ["augmentations", "concepts", "attention", "mae", "train", "compare"]


def _tokens(field) -> dict:
    options = field.options() if callable(field.options) else field.options
    return dict(options) if isinstance(options, dict) else {str(o): o for o in options}




def other_value(field):
    """A valid value of ``field`` that is not its default."""
    default = default_of(field)
    if isinstance(field, Int):
        return field.low + field.step if default == field.low else field.low
    if isinstance(field, Float):
        return field.high if default != field.high else field.low
    if isinstance(field, Bool):
        return not default
    if isinstance(field, Choice):  # None: a list on disk with a single entry (one shipped checkpoint)
        return next((v for v in _tokens(field).values() if v != default), None)
    if isinstance(field, Floats):
        return (field.low, field.high) if default != (field.low, field.high) else (field.low, field.low)
    if isinstance(field, Choices):
        return list(_tokens(field).values())[-2:] if field.options else ["race-ab12", "simclr_20260101-x9"]
    raise AssertionError(field)


@pytest.mark.parametrize("page", PAGES)
def test_every_field_round_trips_and_defaults_stay_out(page):
    fields = [f for f in pages()[page].fields if other_value(f) is not None]
    values = {f.key: other_value(f) for f in fields}
    params = encode(page, values)
    assert params["v"] == str(VERSION) and set(params) == {f.name for f in fields} | {"v"}
    assert all(isinstance(v, str) for v in params.values())
    decoded = decode(page, params)
    assert decoded.problems == [] and decoded.values == values
    defaults = {f.key: default_of(f) for f in pages()[page].fields if default_of(f) is not None}
    assert encode(page, defaults) == {}  # a page at its defaults has a clean URL, without even v


def test_names_are_short_unique_and_never_reserved_or_server_paths():
    for page, schema in pages().items():
        names = [f.name for f in schema.fields]
        assert len(set(names)) == len(names) and not RESERVED & set(names), page
        assert all(len(n) <= 12 and n.replace("_", "").isalnum() for n in names), page
        for f in schema.fields:
            assert not f.key.endswith(("_dir", "_eval", "_upload", "_file")), f.key  # folders, uploads: never
            if isinstance(f, (Choice, Choices)) and f.options is not None:
                assert not {"folder", "upload", "local file", "my runs"} & set(map(str, _tokens(f).values())), f.key
    train = {f.key for f in pages()["train"].fields}
    assert {"train_method", "train_data", "train_bb", "train_size", "train_bs", "train_bk", "train_budget",
            "train_lr", "train_seed", "train_knn_k", "train_knn_t", "train_knn_bank", "train_knn_test",
            "train_knn_every", "train_knn_stages"} <= train


def test_lists_encode_comma_separated():
    params = encode("compare", {"compare_runs": ["race-1-simclr", "run_2"], "race_methods": ["byol", "dino"]})
    assert params == {"runs": "race-1-simclr,run_2", "methods": "byol,dino", "v": "1"}
    assert decode("compare", params).values == {"compare_runs": ["race-1-simclr", "run_2"],
                                                "race_methods": ["byol", "dino"]}
    assert decode("compare", {"runs": ""}).values == {"compare_runs": []}


@pytest.mark.parametrize("page, params, reason", [
    ("mae", {"ratio": "3"}, "is out of range (0.05 to 0.95)"),  # dropped, never clamped to 0.95
    ("mae", {"ratio": "nan"}, "is not a number"),
    ("mae", {"ratio": "1_0"}, "is not a number"),
    ("mae", {"seed": "1.5"}, "is not a whole number"),
    ("mae", {"mask": "checkerboard"}, "is not one of: random, block, grid"),
    ("mae", {"hand": "yes"}, "is not true or false"),
    ("concepts", {"steps": "4250"}, "is not on the widget's steps of 500"),
    ("augmentations", {"scale": "0.9,0.2"}, "is not in ascending order"),
    ("augmentations", {"scale": "0.2"}, "is not 2 comma-separated numbers"),
    ("augmentations", {"image": "upload"}, "is not one of: gallery, shapes, digits"),  # a link carries no file
    ("compare", {"runs": "a,a"}, "repeats an item"),
    ("compare", {"runs": "a,../etc"}, "has malformed items"),
    ("compare", {"methods": "simclr,nope"}, "has items that are not choices (nope)"),
    ("train", {"data": "folder"}, "is not one of: shapes, digits"),
])
def test_invalid_values_are_dropped_and_named(page, params, reason):
    good = {"mae": ("gt", "true", "mae_gt", True), "concepts": ("temp", "0.5", "nce_t", 0.5),
            "augmentations": ("pairs", "3", "aug_n", 3), "compare": ("x", "seconds", "compare_x", "seconds"),
            "train": ("lr", "0.01", "train_lr", 0.01)}[page]
    values, problems = decode(page, {**params, good[0]: good[1], "v": "1"})
    assert values == {good[2]: good[3]}  # the valid value survives its invalid neighbour
    name, text = next(iter(params.items()))
    assert problems == [f"The link's value `{name}={text}` {reason} and was ignored."]


def test_unknown_version_ignores_the_link_with_one_message():
    values, problems = decode("mae", {"ratio": "0.5", "mask": "grid", "v": "2"})
    assert values == {} and len(problems) == 1 and "`v=2`" in problems[0] and "v=1" in problems[0]
    assert decode("mae", {"run": "x", "v": "2"}) == ({}, [])  # nothing of this page's: nothing to say
    assert decode("mae", {"ratio": "0.5"}).values == {"mae_ratio": 0.5}  # a hand-typed link without v: current


def test_other_features_params_are_not_read_or_written():
    assert decode("train", {"run": "simclr-1", "race": "race-2", "method": "byol"}).values == {"train_method": "byol"}
    assert "run" not in encode("train", {"train_method": "byol", "run": "x"})


def test_encode_leaves_out_what_no_link_may_carry_and_reads_clean_floats():
    assert encode("mae", {"mae_image_src": "upload", "mae_model_src": "local file"}) == {}
    assert encode("mae", {"mae_ratio": 0.35000000000000003}) == {"ratio": "0.35", "v": "1"}
    assert encode("mae", {"mae_ratio": 0.7500000000000001}) == {}  # slider noise is still the default
    assert encode("mae", {"mae_seed": True}) == {}  # a bool is not a seed


def test_data_dependent_defaults_come_from_the_page():
    assert encode("attention", {"att_block": 4}) == {"block": "4", "v": "1"}  # no fixed default: written
    assert encode("attention", {"att_block": 4}, defaults={"att_block": 4}) == {}
    assert encode("attention", {"att_size": 128}, defaults={"att_size": 128}) == {}
    assert encode("compare", {"compare_runs": []}) == {"runs": "", "v": "1"}  # always explicit


def test_messages_quote_the_links_text_so_it_cannot_format_them():
    _, [problem] = decode("mae", {"mask": "`**x**` [a](http://e)" + "z" * 100})
    assert problem.count("`") == 2 and "..." in problem and len(problem) < 160


def test_widget_defaults_come_from_the_schema_that_shares_the_widget():
    from sslcore.viz.attention import DISPLAY_SIZES

    assert widget_default("att_image_src") == "shapes"  # the attention page opens on the shapes DINO's data
    assert widget_default("aug_src") == "gallery" and widget_default("att_mass") == 0.6
    assert widget_default("att_size", 224) == 224  # a data-dependent default is the page's to give
    assert widget_default("pre_src", "gallery") == "gallery"  # a widget no link carries
    assert set(_tokens(field_for("att_size")).values()) == set(DISPLAY_SIZES)


def test_schemas_refuse_duplicate_and_reserved_names():
    with pytest.raises(ValueError, match="duplicate"):
        PageSchema((Int("a", "k1", 0, 0, 1), Int("a", "k2", 0, 0, 1)))
    with pytest.raises(ValueError, match="reserved"):
        PageSchema((Int("run", "k", 0, 0, 1),))
    with pytest.raises(ValueError, match="commas"):
        Choice("c", "k", "a", ["a,b"]).parse("a")


def test_schemas_import_without_streamlit():
    code = "import sys, sslcore.urlstate as u; u.pages(); print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
