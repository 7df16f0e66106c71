"""The real app in headless Chromium: start a run, watch it move, stop it, find it in Runs."""

import json
import re
import time

import pytest
from conftest import run_id_of

pytestmark = pytest.mark.browser


def current_step(page) -> int:
    text = page.get_by_text(re.compile(r"step \d+")).first.inner_text(timeout=60_000)
    return int(re.search(r"step (\d+)", text).group(1))


def test_start_watch_stop_and_find_run(server, page, tmp_path):
    page.goto(f"{server}/train")
    page.get_by_role("button", name="Start training").click(timeout=60_000)
    page.get_by_text(re.compile(r"step [1-9]\d*")).first.wait_for(timeout=90_000)
    first = current_step(page)
    deadline = time.time() + 60
    while current_step(page) <= first:  # the fragment redraws from the store without any click
        assert time.time() < deadline, "the live panel did not update"
        time.sleep(0.5)
    page.locator(".js-plotly-plot").nth(4).wait_for(timeout=30_000)  # loss, kNN, lr, throughput, collapse
    page.screenshot(path=str(tmp_path / "train.png"))
    page.get_by_role("button", name="Stop").click()
    page.get_by_text(re.compile(r"stopped · step \d+")).first.wait_for(timeout=90_000)
    run_id = run_id_of(page.url)
    page.goto(f"{server}/runs")
    # The runs table is a canvas grid: its cells are in the DOM for accessibility, not visible.
    page.locator("[role=gridcell]", has_text=run_id).first.wait_for(state="attached", timeout=60_000)
    page.get_by_text(re.compile(r"stopped · step \d+")).first.wait_for(timeout=30_000)
    assert (tmp_path / "home" / "runs" / run_id / "checkpoint.safetensors").exists()


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label).first.click(timeout=120_000)  # a selectbox opens a listbox of options
    page.get_by_role("option", name=option, exact=True).click(timeout=30_000)


@pytest.mark.parametrize("method, diagnostics", [("dino", "method diagnostics"), ("mae", "Fixed held-out images")])
def test_train_page_runs_dino_and_mae(server, page, tmp_path, method, diagnostics):
    page.goto(f"{server}/train")
    choose(page, "Method", method)
    page.get_by_text(f"{method} options").wait_for(timeout=30_000)  # the form rebuilt for the method
    page.get_by_text("steps", exact=True).click()
    budget = page.get_by_role("spinbutton", name="Budget")
    budget.fill("8")
    budget.press("Tab")
    page.get_by_text("Online kNN monitor").click()  # a small monitor: the run's two kNN checks take seconds
    for label, value in (("Bank images", "300"), ("Test images", "100")):
        field = page.get_by_role("spinbutton", name=label)
        field.fill(value)
        field.press("Tab")
    page.get_by_role("button", name="Start training").click()
    status = page.get_by_text(re.compile(r"(finished|stopped|failed|diverged) · step \d+")).first
    status.wait_for(timeout=240_000)
    assert "finished · step 8 " in status.inner_text(), page.locator("[data-testid=stAlert]").all_inner_texts()
    page.get_by_text(diagnostics).first.wait_for(timeout=30_000)
    page.locator(".js-plotly-plot").nth(4).wait_for(timeout=30_000)
    # Every block of the ViT scored against its random init, in its own chart.
    page.get_by_text("kNN gain over random init, stage by stage").first.wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / f"train_{method}.png"), full_page=True)
    run_id = run_id_of(page.url)
    run_dir = tmp_path / "home" / "runs" / run_id
    assert (run_dir / "checkpoint.safetensors").exists()
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["method"], config["knn_bank"], config["knn_test"]) == (method, 300, 100)
