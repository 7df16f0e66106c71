"""A workshop in real browsers: two participants join, one trains, the other waits in the queue and cannot
stop the first one's run; a reload keeps a participant signed in (cookie, not URL)."""

import re

import pytest
from conftest import run_id_of

pytestmark = pytest.mark.browser


def join(browser, server: str, name: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    page.goto(server)
    page.get_by_label("Display name").fill(name)
    page.get_by_label("Workshop code").fill("owl")
    page.get_by_role("button", name="Join").click()
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=60_000)
    return page


def start_run(page, server: str, seconds: int) -> str:
    page.goto(f"{server}/train")
    budget = page.get_by_role("spinbutton", name="Budget")
    budget.fill(str(seconds))
    budget.press("Tab")
    page.get_by_role("button", name="Start training").click(timeout=60_000)
    page.wait_for_url(re.compile(r"run="), timeout=60_000)
    return run_id_of(page.url)


def test_two_participants_share_the_queue_and_own_their_runs(workshop_server, browser, tmp_path):
    ada, ben = join(browser, workshop_server, "Ada"), join(browser, workshop_server, "Ben")
    ada_run = start_run(ada, workshop_server, 120)
    ada.get_by_text(re.compile(r"running · step [1-9]\d* · by Ada")).first.wait_for(timeout=120_000)
    ben_run = start_run(ben, workshop_server, 5)
    # One slot on this machine: Ben's run waits, and says where it stands.
    ben.get_by_text(re.compile(r"Waiting for a free slot: position 1")).first.wait_for(timeout=60_000)
    # Ben looks at Ada's run: read-only, no Stop or Cancel for him.
    ben.goto(f"{workshop_server}/runs?run={ada_run}")
    ben.get_by_text("Read-only: this run belongs to Ada").first.wait_for(timeout=60_000)
    assert ben.get_by_role("button", name="Stop").count() == 0
    assert ben.get_by_role("button", name="Cancel").count() == 0
    # A reload keeps Ada signed in: her token is in a cookie, never in the address.
    ada.reload()
    ada.get_by_text("Signed in as Ada").wait_for(timeout=60_000)
    assert "token" not in ada.url and "ssl_lab_participant" not in ada.url
    ada.get_by_role("button", name="Stop").first.click(timeout=60_000)
    ada.get_by_text(re.compile(r"stopped · step \d+")).first.wait_for(timeout=90_000)
    # The slot frees up and Ben's run trains (the end of the test ends it).
    ben.goto(f"{workshop_server}/runs?run={ben_run}")
    ben.get_by_text(re.compile(r"running · step [1-9]\d* · by Ben")).first.wait_for(timeout=180_000)
    ben.screenshot(path=str(tmp_path / "ben_runs.png"), full_page=True)
