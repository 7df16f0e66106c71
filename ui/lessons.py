"""Widgets of the Lessons page: the lesson picker, one step at a time, its question, Back / Next, the summary.

Content and checking are sslcore.lessons'. Session state keeps, per lesson, the step on show and every
answer checked, so a learner who follows a step's link to another page comes back to the same place. The
lesson and step also live in the URL (``?lesson=views&step=2``, names no other page uses), so a teacher can
hand out a link to a step and the browser's back button goes back a step.
"""

from __future__ import annotations

import streamlit as st

from sslcore.lessons import (BY_KEY, LESSON_PARAM, LESSONS, STEP_PARAM, Lesson, Step, check, locate, run_config,
                             step_token)
from ui.queue import submit_run

# A lesson step's page (its views file) -> (title in app.py, menu icon); tests/test_lessons.py holds it to app.py.
PAGES: dict[str, tuple[str, str]] = {
    "views/augmentations.py": ("Augmentations", ":material/photo_library:"),
    "views/pretext.py": ("Pretext tasks", ":material/extension:"),
    "views/train.py": ("Train", ":material/model_training:"),
    "views/runs.py": ("Runs", ":material/list:"),
    "views/compare.py": ("Compare", ":material/compare_arrows:"),
    "views/attention.py": ("DINO attention", ":material/visibility:"),
    "views/mae.py": ("MAE reconstructions", ":material/grid_view:"),
    "views/embeddings.py": ("Embeddings", ":material/scatter_plot:"),
    "views/concepts.py": ("Concepts", ":material/school:"),
    "views/collapse.py": ("Collapse lab", ":material/compress:"),
}
_PICK = "lessons_pick"  # the lesson selectbox's widget key
_CURRENT = "lessons_current"  # the lesson on show; outlives the widget's value when the learner leaves the page
_POS = "lessons_pos"  # lesson key -> step index on show (len(steps): finished)
_ANSWERS = "lessons_answers"  # lesson key -> {step index: [choice indices checked, in order]}
_RUNS = "lessons_runs"  # "lesson/step" -> the id of the run the learner started there
_SEEN = "lessons_url_seen"  # (lesson, step) of the URL as last applied or written


def _state(name: str, empty):
    if name not in st.session_state:
        st.session_state[name] = empty
    return st.session_state[name]


def _restore_from_url() -> None:
    """Apply a link's lesson and step once, and again whenever the URL changes (back and forward)."""
    raw = (st.query_params.get(LESSON_PARAM), st.query_params.get(STEP_PARAM))
    if st.session_state.get(_SEEN) == raw:
        return
    st.session_state[_SEEN] = raw
    lesson, index, problems = locate({k: v for k, v in zip((LESSON_PARAM, STEP_PARAM), raw) if v is not None})
    for problem in problems:
        st.warning(problem, icon=":material/link_off:")
    if lesson is not None:
        st.session_state[_CURRENT] = st.session_state[_PICK] = lesson.key
        if index is not None:
            _state(_POS, {})[lesson.key] = index


def pick_lesson() -> Lesson:
    """The lesson selectbox, set from the link or from where the learner left off."""
    _restore_from_url()
    if _PICK not in st.session_state:
        st.session_state[_PICK] = st.session_state.get(_CURRENT, LESSONS[0].key)
    key = st.selectbox("Lesson", list(BY_KEY), key=_PICK,
                       format_func=lambda k: f"{BY_KEY[k].title} ({len(BY_KEY[k].steps)} steps)")
    st.session_state[_CURRENT] = key
    return BY_KEY[key]


def position(lesson: Lesson) -> int:
    return min(_state(_POS, {}).get(lesson.key, 0), len(lesson.steps))


def _go(lesson: Lesson, index: int) -> None:
    _state(_POS, {})[lesson.key] = index


def _restart(lesson: Lesson) -> None:
    _go(lesson, 0)
    _state(_ANSWERS, {}).pop(lesson.key, None)


def _switch(key: str) -> None:
    st.session_state[_CURRENT] = st.session_state[_PICK] = key


def attempts(lesson: Lesson) -> dict[int, list[int]]:
    return _state(_ANSWERS, {}).setdefault(lesson.key, {})


def publish(lesson: Lesson) -> None:
    """Write the lesson and step into the URL (only when they changed: each write is a history entry)."""
    wanted = (lesson.key, step_token(lesson, position(lesson)))
    if (st.query_params.get(LESSON_PARAM), st.query_params.get(STEP_PARAM)) != wanted:
        st.query_params[LESSON_PARAM], st.query_params[STEP_PARAM] = wanted
    st.session_state[_SEEN] = wanted


def progress(lesson: Lesson, index: int) -> None:
    n = len(lesson.steps)
    st.progress(min(index + 1, n) / n, text="Done" if index >= n else f"Step {index + 1} of {n}")


def page_link(step: Step) -> None:
    """A link that opens the step's page with its settings, if the step has a page."""
    if step.page is None:
        return
    title, icon = PAGES[step.page]
    label = f"Open {title} with these settings" if step.params else f"Open {title}"
    st.page_link(step.page, label=label, icon=icon, query_params=step.query_params or None)


def run_button(lesson: Lesson, index: int, step: Step) -> None:
    """'Start this run' for a step with a run; then a link to watch it on the Train page."""
    if step.run is None:
        return
    cfg = run_config(step)
    options = ", ".join(f"{k}={v}" for k, v in cfg.options.items())
    st.caption(f"The run: {cfg.method} on {cfg.dataset}, {cfg.max_seconds:g} s of training"
               + (f", options {options}" if options else "") + ". It waits in the queue like any other run.")
    runs: dict[str, str] = _state(_RUNS, {})
    slot = f"{lesson.key}/{index}"
    started = runs.get(slot)
    if st.button("Start it again" if started else "Start this run", key=f"lessons_run_{slot}",
                 icon=":material/play_arrow:", type="secondary" if started else "primary"):
        run_id = submit_run(cfg)
        if run_id is not None:
            runs[slot] = started = run_id
            st.session_state["run_id"] = run_id  # the Train page shows this session's latest run
    if started:
        st.page_link("views/train.py", label=f"Watch run {started} on the Train page", icon=":material/monitoring:",
                     query_params={"run": started})


def question(lesson: Lesson, index: int, step: Step) -> None:
    """The question as a radio in a form with Check; the latest check's verdict and the explanation below."""
    tried = attempts(lesson).setdefault(index, [])
    key = f"lessons_q_{lesson.key}_{index}"
    if key not in st.session_state and tried:
        st.session_state[key] = tried[-1]  # back on a step (the radio's value went with the page): the last answer
    with st.form(f"lessons_form_{lesson.key}_{index}"):
        choice = st.radio(f"**{step.question}**", range(len(step.choices)), index=None, key=key,
                          format_func=lambda i: step.choices[i])
        if st.form_submit_button("Check", type="primary"):
            if choice is None:
                st.warning("Pick an answer first.")
            else:
                tried.append(choice)
    if tried:
        if check(step, tried[-1]):
            st.success(f"**Right.** {step.explanation}", icon=":material/check_circle:")
        else:
            st.error(f"**Not quite.** {step.explanation}", icon=":material/cancel:")


def navigation(lesson: Lesson, index: int) -> None:
    """Back / Next (Finish on the last step)."""
    n = len(lesson.steps)
    back, _, forward = st.columns([1, 3, 1])
    back.button("Back", key=f"lessons_back_{lesson.key}", icon=":material/arrow_back:", disabled=index == 0,
                width="stretch", on_click=_go, args=(lesson, index - 1))
    forward.button("Finish" if index == n - 1 else "Next", key=f"lessons_next_{lesson.key}", type="primary",
                   icon=":material/flag:" if index == n - 1 else ":material/arrow_forward:", icon_position="right",
                   width="stretch", on_click=_go, args=(lesson, index + 1))


def score(lesson: Lesson) -> int:
    """Questions answered right at the first try."""
    tried = attempts(lesson)
    return sum(bool(tried.get(i)) and check(step, tried[i][0]) for i, step in enumerate(lesson.steps))


def completion(lesson: Lesson) -> None:
    """The end: the score, each question with the first answer given, and where to go next."""
    n, right = len(lesson.steps), score(lesson)
    st.success(f"**Lesson complete.** You answered {right} of {n} questions right at the first try.",
               icon=":material/celebration:")
    tried = attempts(lesson)
    st.dataframe([{"step": i + 1, "question": step.question,
                   "your first answer": step.choices[tried[i][0]] if tried.get(i) else "(not answered)",
                   "right": bool(tried.get(i)) and check(step, tried[i][0]),
                   "answer": step.choices[step.answer]} for i, step in enumerate(lesson.steps)],
                 hide_index=True, key=f"lessons_summary_{lesson.key}")
    back, again, onward = st.columns(3)
    back.button("Back to the last step", key=f"lessons_back_{lesson.key}", icon=":material/arrow_back:",
                on_click=_go, args=(lesson, n - 1))
    again.button("Start again", key=f"lessons_again_{lesson.key}", icon=":material/replay:",
                 on_click=_restart, args=(lesson,))
    later = [other for other in LESSONS if other.key != lesson.key and position(other) < len(other.steps)]
    if later:
        onward.button(f"Next lesson: {later[0].title}", key="lessons_onward", type="primary",
                      icon=":material/arrow_forward:", icon_position="right", on_click=_switch, args=(later[0].key,))
