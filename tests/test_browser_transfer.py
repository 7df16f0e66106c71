"""The Transfer planner in headless Chromium: a tiny run in the server's store, a small labelled folder,
the flow clicked through to the result table and its reading."""

from dataclasses import asdict

import pytest

from conftest import wait_idle
from test_transfer import TINY, labelled_folder

pytestmark = pytest.mark.browser


def fill(page, key: str, value: str) -> None:
    box = page.locator(f".st-key-{key} input")
    box.fill(value)
    box.press("Tab")


def test_transfer_flow_shows_the_result_table(server, page, tmp_path):
    from sslcore.runs import RunConfig, RunStore
    from sslcore.runs.execute import execute

    store = RunStore(tmp_path / "home" / "runs")  # the server's store
    cfg = RunConfig(method="simclr", **TINY)
    run_id = store.create(asdict(cfg))
    execute(cfg, store, run_id, log=lambda s: None)
    folder = labelled_folder(tmp_path / "colours")

    page.goto(f"{server}/transfer")
    page.get_by_text("5,000,000 chest X-rays").wait_for(timeout=120_000)
    wait_idle(page, timeout=90.0)
    page.get_by_role("tab", name="Your data").click()
    chosen = page.locator(".st-key-tr_run input")
    chosen.wait_for(timeout=60_000)
    assert chosen.input_value().startswith(f"{run_id}: simclr on shapes, 20 steps")
    page.locator(".st-key-tr_data").get_by_text("folder", exact=True).click()
    fill(page, "tr_dir", str(folder))
    page.get_by_text(f"Cross-domain: {run_id} pretrained on shapes").wait_for(timeout=60_000)
    fill(page, "tr_labelled", "100")  # the same-domain probe on shapes: 100 labelled, 50 test images
    fill(page, "tr_test", "50")
    fill(page, "tr_epochs", "2")
    page.get_by_role("button", name="Evaluate the transfer").click()

    table = page.locator(".st-key-tr_result [data-testid=stDataFrame]")
    table.wait_for(timeout=240_000)
    page.get_by_text("With 100% of the labels (48 images)").wait_for(timeout=30_000)
    page.get_by_text("Cross-domain: the backbone was pretrained on shapes and is tested on the folder 'colours'"
                     ).wait_for(timeout=30_000)
    page.locator(".st-key-tr_gap [data-testid=stDataFrame]").wait_for(timeout=30_000)
    table.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "transfer.png"), full_page=True)
