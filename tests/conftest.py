import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download fails offline
ROOT = Path(__file__).parents[1]
# ../shared/data extracted by `make testdata`; tests that need it skip when it is absent.
REAL_DATA = Path(os.environ.get("SSLCORE_TEST_DATA", ROOT / ".cache" / "data"))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own SSLCORE_HOME: no test reads or writes ~/.sslcore. A dispatcher a test
    starts exits 5 s after its queue empties instead of 120 s, and whatever worker or dispatcher still
    serves one of the test's stores when it ends is killed, so no run trains on into the next tests.
    Stores start empty: the starter pack's tests install it themselves (tests/test_starter.py)."""
    monkeypatch.setenv("SSLCORE_HOME", str(tmp_path / "sslcore_home"))
    monkeypatch.setenv("SSLCORE_STARTER_PACK", "0")
    monkeypatch.setenv("SSLCORE_DISPATCHER_IDLE_EXIT", "5")
    yield
    end_processes_serving(tmp_path)


def end_processes_serving(folder: Path) -> None:
    """SIGKILL the process group of every ``sslcore worker`` or ``sslcore dispatcher`` whose store lies
    under ``folder`` (each leads a session of its own, so its group is its own)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "sslcore" in args and {"worker", "dispatcher"} & set(args) and any(str(folder) in a for a in args):
            try:
                os.killpg(int(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture(autouse=True)
def torch_threads():
    """Restore torch's thread count after each test: the app sets it for its process (ui.state), and
    AppTest runs the app inside the test process, so later training tests would inherit one thread."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(items):
    if os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason="Debian chromium is not installed (.ci/run installs it)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def open_app(page: str | None = None, timeout: float = 120):
    """The real app in AppTest, on ``page`` (a views/ file), with Streamlit's caches cleared first:
    AppTest reuses one session id and the caches outlive a test. Fails on any exception."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run_until(app, done, seconds: float = 180, check=None) -> None:
    """``run_every`` does not tick in AppTest: rerun ``app`` until ``done(app)``, failing on any exception
    after each rerun (and on whatever ``check(app)`` asserts)."""
    deadline = time.time() + seconds
    while not done(app):
        assert time.time() < deadline, "the background job did not finish"
        time.sleep(1)
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        if check is not None:
            check(app)


def wait_idle(page, quiet: float = 2.0, timeout: float = 60.0) -> None:
    """Until the browser ``page`` has run no script for ``quiet`` seconds: a rerun can flip a tab back or
    shift a chart under the mouse."""
    status = page.locator("[data-testid=stStatusWidget]")
    deadline, calm_since = time.time() + timeout, None
    while time.time() < deadline:
        if status.count() and status.first.is_visible():
            calm_since = None
        elif calm_since is None:
            calm_since = time.time()
        elif time.time() - calm_since > quiet:
            return
        time.sleep(0.2)
    pytest.fail("the app kept rerunning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home, extra_env: dict[str, str] | None = None):
    """The real app served by ``streamlit run`` on a free port with run store ``home``; yields its URL."""
    port = free_port()
    env = {**os.environ, "SSLCORE_HOME": str(home), **(extra_env or {})}
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
        try:
            proc.wait(timeout=20)  # background jobs are daemon threads: quitting must not wait for them
        except subprocess.TimeoutExpired:
            proc.kill()  # no server left behind, and the slow shutdown still fails the test
            proc.wait()
            raise


@pytest.fixture
def server(tmp_path):
    """The app in single-user mode with its own run store (``tmp_path/home``); yields its URL."""
    yield from serve(tmp_path / "home")


@pytest.fixture
def workshop_server(tmp_path):
    """The app in workshop mode (code ``owl``, teacher key ``s3cret``); yields its URL."""
    yield from serve(tmp_path / "home", {"SSLCORE_WORKSHOP": "1", "SSLCORE_WORKSHOP_CODE": "owl",
                                         "SSLCORE_TEACHER_KEY": "s3cret"})


@pytest.fixture
def browser():
    """Headless Debian Chromium, with the flags this closed network needs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    """A page of its own (one browser session)."""
    return browser.new_page(viewport={"width": 1400, "height": 1100})


def run_id_of(url: str) -> str:
    """The ``run`` query parameter of a page's URL."""
    from urllib.parse import parse_qs, urlparse

    return parse_qs(urlparse(url).query)["run"][0]
