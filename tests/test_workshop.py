"""Workshop mode: joining, ownership on the pages, the teacher's page, presets and allowed folders."""

from dataclasses import replace
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from sslcore.runs import RunConfig, RunStore
from sslcore.runs.scheduler import Actor, cancel, stop, submit
from sslcore.workshop import (ClassPresets, WorkshopError, WorkshopSettings, from_token, join, participants,
                              reset_class)

APP = str(Path(__file__).parents[1] / "app.py")
TINY = RunConfig(dataset="shapes", steps=3, max_seconds=None, batch_size=16, train_size=128, knn_bank=50, knn_test=50)
SETTINGS = WorkshopSettings(enabled=True, code="owl", teacher_key="s3cret")


def test_settings_from_the_environment(tmp_path):
    env = {"SSLCORE_WORKSHOP": "1", "SSLCORE_WORKSHOP_CODE": "owl", "SSLCORE_DATA_ROOTS": str(tmp_path)}
    settings = WorkshopSettings.from_env(env, {"teacher_key": "from-secrets"})
    assert settings.enabled and settings.code == "owl" and settings.teacher_key == "from-secrets"
    assert settings.check_teacher_key("from-secrets") and not settings.check_teacher_key("guess")
    assert not WorkshopSettings.from_env({}).enabled
    assert not WorkshopSettings().check_teacher_key("")  # no key set: nobody is the teacher


def test_join_checks_code_and_names_and_finds_the_browser_again(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(WorkshopError, match="not this workshop's code"):
        join(store, SETTINGS, "Ada", "cat")
    ada, token = join(store, SETTINGS, "  Ada  ", "owl")
    assert ada.name == "Ada" and from_token(store, token) == ada and from_token(store, "forged") is None
    with pytest.raises(WorkshopError, match="already called 'ada'"):
        join(store, SETTINGS, "ada", "owl")
    with pytest.raises(WorkshopError, match="display name"):
        join(store, SETTINGS, "x" * 41, "owl")
    # Only a hash of the token is stored: the database cannot be used to sign in as Ada.
    with store.connection() as db:
        assert token not in str(db.execute("SELECT * FROM participants").fetchall())


def test_last_seen_is_written_once_a_minute_not_on_every_script_run(tmp_path, monkeypatch):
    import sslcore.workshop as workshop

    store = RunStore(tmp_path)
    clock = [1_000_000.0]
    monkeypatch.setattr(workshop.time, "time", lambda: clock[0])
    ada, token = join(store, SETTINGS, "Ada", "owl")

    def stored() -> float:
        with store.connection() as db:
            return db.execute("SELECT last_seen FROM participants").fetchone()[0]

    clock[0] += workshop.SEEN_EVERY - 1
    assert from_token(store, token).last_seen == ada.joined == stored()  # within the minute: read, not written
    clock[0] += 1
    assert from_token(store, token).last_seen == clock[0] == stored() == participants(store)[0].last_seen


def test_allowed_folders(tmp_path):
    data = tmp_path / "data"
    (data / "cats").mkdir(parents=True)
    settings = WorkshopSettings(enabled=True, data_roots=(data.resolve(),))
    assert settings.check_folder(str(data / "cats")) == (data / "cats").resolve()
    for outside in (str(tmp_path), str(data / ".." / ".."), "/root", "~"):
        with pytest.raises(WorkshopError, match="outside the folders the teacher allows"):
            settings.check_folder(outside)
    (data / "escape").symlink_to(tmp_path)
    with pytest.raises(WorkshopError, match="outside"):
        settings.check_folder(str(data / "escape"))  # symlinks are resolved first
    with pytest.raises(WorkshopError, match="allows no server folders"):
        WorkshopSettings(enabled=True).check_folder(str(data))


def test_presets_refuse_what_the_class_does_not_offer(tmp_path):
    store = RunStore(tmp_path)
    presets = ClassPresets(methods=("simclr", "byol"), default_seconds=30, max_seconds=90, max_queued=1)
    presets.save(store)
    assert ClassPresets.load(store) == presets
    with pytest.raises(WorkshopError, match="dino is not offered"):
        presets.apply(replace(TINY, method="dino"))
    with pytest.raises(WorkshopError, match="at most 90 s"):
        presets.apply(replace(TINY, max_seconds=120.0))
    assert presets.apply(TINY).max_seconds == 90  # a steps budget also ends at the class's longest budget
    with pytest.raises(WorkshopError):
        ClassPresets(methods=())


def test_reset_starts_a_new_class(tmp_path):
    store = RunStore(tmp_path)
    ada, token = join(store, SETTINGS, "Ada", "owl")
    waiting = submit(store, [TINY], ada.actor())[0]
    store.set_setting("paused", True)
    with pytest.raises(PermissionError):
        reset_class(store, ada.actor())
    report = reset_class(store, Actor("t", "Teacher", teacher=True))
    assert report.cancelled == [waiting] and store.get(waiting).status == "cancelled"
    assert from_token(store, token) is None and participants(store) == []  # everyone joins again
    assert store.setting("paused") is False
    join(store, SETTINGS, "Ada", "owl")  # the name is free in the new class


# --------------------------------------------------------------------------- the app in workshop mode


@pytest.fixture
def workshop_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SSLCORE_WORKSHOP", "1")
    monkeypatch.setenv("SSLCORE_WORKSHOP_CODE", "owl")
    monkeypatch.setenv("SSLCORE_TEACHER_KEY", "s3cret")
    monkeypatch.setenv("SSLCORE_DATA_ROOTS", str(tmp_path / "allowed"))
    st.cache_resource.clear()
    st.cache_data.clear()


def session(name: str) -> AppTest:
    """A browser session that joined as ``name``."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert at.title[0].value == "Join the workshop"
    at.text_input(key="join_name").input(name)
    at.text_input(key="join_code").input("owl")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_session_must_join_and_a_wrong_code_is_refused(workshop_env):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert at.title[0].value == "Join the workshop" and len(at.title) == 1  # no page behind the form
    at.text_input(key="join_name").input("Ada")
    at.text_input(key="join_code").input("cat")
    at.button[0].click().run()
    assert "not this workshop's code" in at.error[0].value and at.title[0].value == "Join the workshop"
    at = session("Ada")
    assert at.title[0].value == "SSL Lab"
    assert any("Signed in as **Ada**" in c.value for c in at.sidebar.caption)


def test_a_second_session_cannot_stop_the_first_ones_run(workshop_env):
    from ui.state import run_store

    ada = session("Ada")
    store = run_store()
    ada_id = participants(store)[0].id
    run_id = submit(store, [TINY], Actor(ada_id, "Ada"))[0]
    ben = session("Ben")
    ben.query_params["run"] = run_id
    ben.switch_page("views/runs.py").run()
    assert not ben.exception, [e.value for e in ben.exception]
    assert any("Read-only: this run belongs to Ada" in c.value for c in ben.caption)
    assert not [b for b in ben.button if b.label in ("Stop", "Cancel", "Resume")]
    # The check is in sslcore, not only in the hidden buttons.
    ben_id = participants(store)[1].id
    with pytest.raises(PermissionError, match="belongs to Ada"):
        cancel(store, run_id, Actor(ben_id, "Ben"))
    with pytest.raises(PermissionError):
        stop(store, run_id, Actor(ben_id, "Ben"))
    # Ada sees her own buttons, and her Cancel works.
    ada.query_params["run"] = run_id
    ada.switch_page("views/runs.py").run()
    ada.button(key=f"runs_cancel_{run_id}").click().run()
    assert store.get(run_id).status == "cancelled"


def test_the_teacher_page_unlocks_with_the_key_and_sets_presets(workshop_env):
    at = session("Teacher")
    at.switch_page("views/teacher.py").run()
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert "not the teacher key" in at.error[0].value
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    assert [s.value for s in at.subheader] == ["Queue", "Participants", "Class presets", "Reset between classes"]
    at.multiselect[0].set_value(["byol", "simclr"])
    at.multiselect[1].set_value(["budget"])
    at.button(key="FormSubmitter:teacher_presets-Save presets").click().run()
    assert not at.exception, [e.value for e in at.exception]
    student = session("Cy")
    student.switch_page("views/train.py").run()
    assert student.selectbox(key="train_method").options == ["byol", "simclr"]
    assert not [s for s in student.selectbox if s.key == "train_data"]  # the data knobs are hidden


def test_folders_outside_the_data_roots_are_refused(workshop_env, monkeypatch):
    from sslcore.workshop import ClassPresets
    from ui.state import run_store

    at = session("Dee")
    at.switch_page("views/train.py").run()
    at.selectbox(key="train_data").select("folder")
    at.text_input(key="train_dir").input(str(Path.home()))
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert "outside the folders the teacher allows" in at.error[0].value
    assert run_store().list() == [] and ClassPresets.load(run_store()) == ClassPresets()


def test_the_embeddings_page_also_keeps_participants_inside_the_data_roots(workshop_env, tmp_path):
    allowed = tmp_path / "allowed" / "cats"
    allowed.mkdir(parents=True)
    at = session("Eve")
    at.switch_page("views/embeddings.py").run()
    at.radio(key="emb_data").set_value("folder").run()
    at.text_input(key="emb_dir").input(str(Path.home())).run()
    assert "outside the folders the teacher allows" in at.error[0].value
    at.text_input(key="emb_dir").input(str(allowed.parent)).run()
    assert not [e for e in at.error if "outside" in e.value]
