"""The real app in headless Chromium: start a run, watch it move, stop it, find it in Runs."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).parents[1]
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed (.ci/run installs it)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "SSLCORE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            assert time.time() < deadline and proc.poll() is None, "streamlit did not start"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


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
    run_id = page.url.split("run=")[1]
    page.goto(f"{server}/runs")
    # The runs table is a canvas grid: its cells are in the DOM for accessibility, not visible.
    page.locator("[role=gridcell]", has_text=run_id).first.wait_for(state="attached", timeout=60_000)
    page.get_by_text(re.compile(r"stopped · step \d+")).first.wait_for(timeout=30_000)
    assert (tmp_path / "home" / "runs" / run_id / "checkpoint.safetensors").exists()
