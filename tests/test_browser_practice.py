"""The Practice page in headless Chromium: answer two match-the-method items, submit, read the score."""

import pytest

from sslcore.practice import MATCH_ITEMS, METHOD_LABELS

pytestmark = pytest.mark.browser


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label).first.click(timeout=60_000)  # a selectbox opens a listbox of options
    page.get_by_role("option", name=option, exact=True).click(timeout=30_000)


def test_match_the_method_scores_two_answers(server, page):
    page.goto(f"{server}/practice")
    page.get_by_role("tab", name="Match the method").click(timeout=120_000)
    mae, rotation = (next(m for m in MATCH_ITEMS if m.id == i) for i in ("mae", "rotation"))
    choose(page, mae.description, METHOD_LABELS["mae"])  # right
    choose(page, rotation.description, METHOD_LABELS["jigsaw"])  # wrong
    page.get_by_role("button", name="Submit").click()
    score = page.get_by_test_id("stMetricValue").filter(has_text="/")
    score.wait_for(timeout=60_000)
    assert score.inner_text() == f"1 / {len(MATCH_ITEMS)}"
    page.get_by_text(f"Not {METHOD_LABELS['jigsaw']}; it is {METHOD_LABELS['rotation']}.").wait_for(timeout=10_000)
