"""The Collapse lab in headless Chromium: launch an ablation and its intact twin, watch both panels."""

import re

import pytest

pytestmark = pytest.mark.browser


def test_collapse_lab_launches_the_broken_and_the_intact_variant(server, page, tmp_path):
    page.goto(f"{server}/collapse")
    page.get_by_text("No experiment with this ablation yet").wait_for(timeout=120_000)
    page.get_by_role("button", name="Train the broken and the intact variant").click()
    # Both runs of the pair show up side by side, each with its status and step, and the signal chart.
    page.get_by_text(re.compile(r"^intact · (queued|running|finished) · step \d+")).first.wait_for(timeout=120_000)
    page.get_by_text(re.compile(r"^broken · (queued|running|finished) · step \d+")).first.wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    # The intact run trains first and gets its verdict after its first 20 steps (tests/test_collapse.py trains
    # the pair to the end and asserts both verdicts).
    page.get_by_text(re.compile(r"^Not collapsed: the std of the normalised embeddings")).first.wait_for(
        timeout=300_000)
    page.screenshot(path=str(tmp_path / "collapse.png"), full_page=True)
