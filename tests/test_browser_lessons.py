"""The Lessons page in headless Chromium: a link opens a lesson, each question is answered by clicking, checked
and explained, Next moves on, and the end shows the score. The lesson played starts no run."""

import re

import pytest

from sslcore.lessons import BY_KEY

pytestmark = pytest.mark.browser


def test_play_a_lesson_to_its_end(server, page):
    lesson = BY_KEY["pretext"]
    assert not any(step.run for step in lesson.steps)
    n = len(lesson.steps)
    page.goto(f"{server}/lessons?lesson={lesson.key}&step=1")
    for i, step in enumerate(lesson.steps):
        page.get_by_text(f"Step {i + 1} of {n}", exact=True).wait_for(timeout=120_000 if i == 0 else 60_000)
        choice = step.choices[step.answer]
        form = page.get_by_test_id("stForm").filter(has_text=choice)
        form.get_by_text(choice, exact=True).click(timeout=60_000)
        form.get_by_role("button", name="Check").click()
        page.get_by_text(step.explanation[:40]).wait_for(timeout=60_000)
        assert page.get_by_test_id("stAlertContentSuccess").filter(has_text="Right.").count() == 1
        page.wait_for_url(re.compile(rf"lesson={lesson.key}&step={i + 1}$"), timeout=30_000)
        page.get_by_role("button", name="Finish" if i == n - 1 else "Next").click()
    page.get_by_text("Lesson complete.").wait_for(timeout=60_000)
    page.get_by_text(f"You answered {n} of {n} questions right at the first try.").wait_for(timeout=10_000)
    page.wait_for_url(re.compile(rf"lesson={lesson.key}&step=done$"), timeout=30_000)


def test_a_step_link_opens_its_page_with_the_settings(server, page):
    lesson = BY_KEY["masking"]
    step = lesson.steps[0]
    assert step.page == "views/concepts.py" and step.params["tab"] == "masking"
    page.goto(f"{server}/lessons?lesson={lesson.key}&step=1")
    page.get_by_role("link", name="Open Concepts with these settings").click(timeout=120_000)
    page.wait_for_url(re.compile(r"/concepts\?"), timeout=60_000)
    page.get_by_role("tab", name="MAE masking", selected=True).wait_for(timeout=60_000)
    assert "tab=masking" in page.url and "v=1" in page.url
    # Back to the lesson from the menu: the same step, kept in the session.
    more = page.get_by_text(re.compile(r"^View \d+ more$"))  # the menu folds long sections
    if more.count():
        more.click()
    page.get_by_role("link", name="Lessons", exact=True).click()
    page.get_by_text(f"Step 1 of {len(lesson.steps)}", exact=True).wait_for(timeout=60_000)
    page.wait_for_url(re.compile(rf"lesson={lesson.key}&step=1$"), timeout=30_000)
