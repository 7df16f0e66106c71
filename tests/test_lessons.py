"""Guided lessons: their content stays in step with the pages they open (every link's settings decode on the
page's schema, every run is a valid short run on shapes), and the Lessons page in AppTest: a lesson played to its
end, a wrong answer, a link to a step, a run started from a step."""

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from conftest import open_app
from sslcore import lessons
from sslcore.lessons import (BY_KEY, LESSONS, MAX_RUN_SECONDS, Lesson, Step, check, locate, run_config,
                             step_token)
from sslcore.methods import METHODS
from sslcore.runs.starter import PREFIX
from sslcore.urlstate import RESERVED, RUN_ID, decode, pages
from ui.lessons import PAGES

ROOT = Path(__file__).parents[1]
STEPS = [(lesson.key, i, step) for lesson in LESSONS for i, step in enumerate(lesson.steps)]
IDS = [f"{key}-{i + 1}" for key, i, _ in STEPS]
WITH_PAGE = [pytest.param(*s, id=n) for n, s in zip(IDS, STEPS) if s[2].page]
WITH_RUN = [pytest.param(*s, id=n) for n, s in zip(IDS, STEPS) if s[2].run]


# --- content ----------------------------------------------------------------------------------------

def test_at_least_four_lessons_of_three_to_five_steps():
    assert len(LESSONS) >= 4
    assert {"views", "collapse", "masking", "pretext", "labels"} <= set(BY_KEY)
    assert len(BY_KEY) == len(LESSONS)
    for lesson in LESSONS:
        assert 3 <= len(lesson.steps) <= 5, lesson.key
        assert re.fullmatch(r"[a-z]+", lesson.key) and lesson.title and lesson.goal
    assert any(step.run for _, _, step in STEPS), "some step should launch a run"
    assert any(step.page is None for _, _, step in STEPS) and any(step.page for _, _, step in STEPS)


@pytest.mark.parametrize("key, i, step", STEPS, ids=IDS)
def test_answers_in_range_and_texts_filled(key, i, step):
    assert 0 <= step.answer < len(step.choices) and len(step.choices) >= 2
    assert len(set(step.choices)) == len(step.choices)
    assert step.text and step.question.endswith("?") and len(step.explanation) > 80
    assert check(step, step.answer)
    assert not any(check(step, c) for c in range(len(step.choices)) if c != step.answer)
    assert not check(step, None)


def test_check_refuses_a_choice_out_of_range():
    step = LESSONS[0].steps[0]
    with pytest.raises(ValueError):
        check(step, len(step.choices))
    with pytest.raises(ValueError):
        Step("t", "q?", ("a", "b"), 2, "e")  # answer out of range
    with pytest.raises(ValueError):
        Step("t", "q?", ("a", "a"), 0, "e")  # repeated choice
    with pytest.raises(ValueError):
        Step("t", "q?", ("a", "b"), 0, "e", params={"ratio": "0.5"})  # settings without a page


@pytest.mark.parametrize("key, i, step", WITH_PAGE)
def test_every_link_decodes_on_its_page(key, i, step):
    """The settings are the page's own: its schema's names decode without a problem, plus ``run`` where the page
    reads it; a page without URL state gets a plain link. The view file exists and is routed in app.py."""
    assert (ROOT / step.page).exists(), step.page
    assert f'st.Page("{step.page}"' in (ROOT / "app.py").read_text()
    params = step.query_params
    assert all(isinstance(v, str) for v in params.values())
    extra = lessons.EXTRA_PARAMS.get(step.page, frozenset())
    schema_name = lessons.SCHEMAS.get(step.page)
    if schema_name is None:
        assert set(params) <= extra, f"{step.page} has no URL state for {sorted(set(params) - extra)}"
    else:
        schema = pages()[schema_name]
        assert set(params) <= schema.names | extra, sorted(set(params) - schema.names - extra)
        values, problems = decode(schema_name, params)
        assert problems == []
        assert len(values) == len(set(params) - extra - {"v"})  # every setting reaches a widget
        if set(params) - extra:
            assert params["v"] == "1"
    if "run" in params:  # a reference run of the starter pack
        assert re.fullmatch(RUN_ID, params["run"]) and params["run"].removeprefix(PREFIX) in METHODS
    if "runs" in params:
        assert all(r.removeprefix(PREFIX) in METHODS for r in params["runs"].split(","))


def test_schema_pages_are_the_url_state_pages():
    assert set(lessons.SCHEMAS.values()) == set(pages())
    for path in lessons.SCHEMAS:
        assert (ROOT / path).exists()


@pytest.mark.parametrize("key, i, step", WITH_RUN)
def test_every_run_is_a_short_valid_run_on_shapes(key, i, step):
    cfg = run_config(step)
    assert cfg.dataset == "shapes" and cfg.method in METHODS
    assert cfg.max_seconds is not None and 0 < cfg.max_seconds <= MAX_RUN_SECONDS == 30
    assert cfg.steps is None or cfg.steps <= 1000
    from sslcore.methods import create_method
    from sslcore.models import create_backbone

    create_method(cfg.method, create_backbone(cfg.backbone, cfg.image_size), cfg.image_size, **cfg.options)


def test_run_config_refuses_what_a_lesson_may_not_start():
    def step(**run):
        return Step("t", "q?", ("a", "b"), 0, "e", run=run)

    for bad in ({"max_seconds": 31}, {"max_seconds": None, "steps": 100}, {"dataset": "digits"},
                {"method": "nope"}, {"options": {"no_such_option": 1}}, {"backbone": "convnet", "method": "mae"},
                {"not_a_field": 1}):
        with pytest.raises(ValueError):
            run_config(step(**{"max_seconds": 20, **bad}))
    assert run_config(step(method="mae", max_seconds=20)).backbone.startswith("vit")  # the method's default


def test_url_names_collide_with_no_page():
    every_page = frozenset().union(*(s.names for s in pages().values()))
    for name in (lessons.LESSON_PARAM, lessons.STEP_PARAM):
        assert name not in every_page and name not in RESERVED


def test_locate_reads_a_link():
    views = BY_KEY["views"]
    assert locate({}) == (None, None, [])
    assert locate({"lesson": "views", "step": "2"}) == (views, 1, [])
    assert locate({"lesson": "views", "step": "done"}) == (views, len(views.steps), [])
    assert locate({"lesson": "views"}) == (views, None, [])
    lesson, index, problems = locate({"lesson": "views", "step": "99"})
    assert (lesson, index) == (views, None) and "steps 1 to" in problems[0]
    lesson, index, problems = locate({"lesson": "nope`**x**", "step": "1"})
    assert lesson is None and "`nopex`" in problems[0] and "**" not in problems[0]
    assert [step_token(views, i) for i in range(len(views.steps) + 1)][-2:] == [str(len(views.steps)), "done"]


def test_engine_module_imports_neither_streamlit_nor_torch():
    code = "import sys, sslcore.lessons; assert 'streamlit' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_ui_pages_match_app():
    app = (ROOT / "app.py").read_text()
    for path, (title, icon) in PAGES.items():
        assert f'st.Page("{path}", title="{title}", icon="{icon}")' in app
    assert {s.page for _, _, s in STEPS if s.page} <= set(PAGES)
    assert 'st.Page("views/lessons.py", title="Lessons"' in app
    assert len((ROOT / "views/lessons.py").read_text().splitlines()) <= 120


# --- the page ---------------------------------------------------------------------------------------

@pytest.fixture
def at():
    return open_app()


def open_lessons(at: AppTest, **params: str) -> AppTest:
    at.query_params.clear()
    at.query_params.update(params)
    at.switch_page("views/lessons.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def play(at: AppTest, lesson: Lesson, i: int, choice: int) -> None:
    at.radio(key=f"lessons_q_{lesson.key}_{i}").set_value(choice)
    at.button(key=f"FormSubmitter:lessons_form_{lesson.key}_{i}-Check").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def next_step(at: AppTest, lesson: Lesson) -> None:
    at.button(key=f"lessons_next_{lesson.key}").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_a_lesson_played_to_its_end(at):
    lesson = BY_KEY["pretext"]
    open_lessons(at)
    at.selectbox(key="lessons_pick").set_value(lesson.key).run()
    n = len(lesson.steps)
    for i, step in enumerate(lesson.steps):
        assert at.session_state["lessons_pos"].get(lesson.key, 0) == i
        assert any(f"Step {i + 1} of {n}" in p.proto.text for p in at.get("progress"))
        assert any(step.text in m.value for m in at.markdown)
        if step.page:
            title = PAGES[step.page][0]
            links = [link.proto for link in at.get("page_link") if link.proto.label.startswith(f"Open {title}")]
            assert len(links) == 1, [link.proto.label for link in at.get("page_link")]
            assert {k: v[0] for k, v in parse_qs(links[0].query_string).items()} == step.query_params
        play(at, lesson, i, step.answer)
        assert any(step.explanation in s.value and "Right" in s.value for s in at.success)
        assert at.query_params["step"] == str(i + 1) and at.query_params["lesson"] == lesson.key
        next_step(at, lesson)
    done = [s.value for s in at.success if "Lesson complete" in s.value]
    assert done and f"{n} of {n} questions right" in done[0]
    assert at.query_params["step"] == "done"
    # Start again: the answers and the position go.
    at.button(key=f"lessons_again_{lesson.key}").click().run()
    assert at.session_state["lessons_pos"][lesson.key] == 0 and not at.success


def test_a_wrong_answer_shows_the_explanation_and_counts_in_the_score(at):
    lesson = BY_KEY["masking"]
    open_lessons(at, lesson="masking", step=str(len(lesson.steps)))  # a link to the last step
    assert any(f"Step {len(lesson.steps)} of" in p.proto.text for p in at.get("progress"))
    i, step = len(lesson.steps) - 1, lesson.steps[-1]
    wrong = (step.answer + 1) % len(step.choices)
    play(at, lesson, i, wrong)
    assert [e.value for e in at.error if step.explanation in e.value and "Not quite" in e.value]
    assert not [s for s in at.success if step.explanation in s.value]
    play(at, lesson, i, step.answer)  # a second try is shown right, but the score keeps the first
    assert [s.value for s in at.success if step.explanation in s.value]
    next_step(at, lesson)
    done = [s.value for s in at.success if "Lesson complete" in s.value]
    assert done and f"0 of {len(lesson.steps)} questions right" in done[0]


def test_check_without_an_answer_asks_for_one(at):
    open_lessons(at, lesson="views", step="1")
    at.button(key="FormSubmitter:lessons_form_views_0-Check").click().run()
    assert any("Pick an answer first" in w.value for w in at.warning)
    assert not at.error and not at.success


def test_a_bad_link_says_what_it_ignored(at):
    open_lessons(at, lesson="nope", step="1")
    assert any("no lesson called" in w.value for w in at.warning)
    assert at.selectbox(key="lessons_pick").value == LESSONS[0].key
    open_lessons(at, lesson="labels", step="42")
    assert any("steps 1 to" in w.value for w in at.warning)
    assert at.selectbox(key="lessons_pick").value == "labels"


def test_start_this_run_queues_it_and_links_to_the_train_page(at, monkeypatch):
    import ui.queue

    monkeypatch.setattr(ui.queue, "ensure_dispatcher", lambda store: None)  # queued, not trained
    lesson = BY_KEY["collapse"]
    i = next(i for i, s in enumerate(lesson.steps) if s.run)
    open_lessons(at, lesson=lesson.key, step=str(i + 1))
    at.button(key=f"lessons_run_{lesson.key}/{i}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    from ui.state import run_store

    runs = run_store().list()
    assert len(runs) == 1 and runs[0].status == "queued"
    cfg = runs[0].config
    assert (cfg["method"], cfg["dataset"], cfg["max_seconds"]) == ("simclr", "shapes", 30)
    assert cfg["options"]["negatives"] is False
    links = [link.proto for link in at.get("page_link")]
    assert any(runs[0].id in link.label and "run=" + runs[0].id in link.query_string for link in links), links
    assert at.session_state["run_id"] == runs[0].id
