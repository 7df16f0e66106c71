"""The real app in headless Chromium: upload a photo on the attention and MAE pages and see every panel."""

import re

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture
def photo(tmp_path):
    from sslcore.data import gallery

    path = tmp_path / "astronaut.png"
    gallery()["astronaut"].resize((300, 200)).save(path)  # not square: the aspect ratio must survive
    return path


def open_page(page, server, title):
    # Through the router's sidebar, as a user does.
    page.goto(server)
    page.get_by_role("link", name=title).click(timeout=60_000)
    page.get_by_role("heading", name=title).wait_for(timeout=60_000)


def upload(page, photo):
    page.get_by_text("upload", exact=True).click(timeout=60_000)
    page.locator("input[type=file]").last.set_input_files(str(photo), timeout=30_000)


def test_attention_page_shows_every_panel_for_an_upload(server, page, photo, tmp_path):
    open_page(page, server, "DINO attention")
    upload(page, photo)
    page.get_by_text(re.compile(r"^input \d+x\d+")).wait_for(timeout=90_000)
    # 300x200 at twice the 64 px training size: longer side 128, then whole 8 px patches (85 -> 80 rows)
    assert page.get_by_text(re.compile(r"^input 128x80 ")).count() == 1
    page.get_by_text(re.compile(r"head mean, block \d+: green outlines")).wait_for(timeout=30_000)
    page.get_by_text("patch features: first 3 principal components as RGB").wait_for(timeout=30_000)
    for head in (1, 2, 3):
        page.get_by_text(re.compile(rf"^head {head}: 60% of its attention")).wait_for(timeout=30_000)
    assert page.locator("[data-testid=stImage] img").count() >= 6  # input, overlay, PCA, three heads
    page.screenshot(path=str(tmp_path / "attention.png"), full_page=True)


def test_mae_page_shows_every_panel_for_an_upload(server, page, photo, tmp_path):
    open_page(page, server, "MAE reconstructions")
    upload(page, photo)
    page.get_by_text("reconstruction + visible patches").wait_for(timeout=90_000)
    for caption in ("original", re.compile(r"^masked: 75% of \d+ patches hidden"), "reconstruction (pixels)"):
        page.get_by_text(caption, exact=isinstance(caption, str)).wait_for(timeout=30_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # per-patch error heatmap
    page.get_by_text(re.compile(r"\d+\.\d+ dB")).wait_for(timeout=30_000)
    assert page.locator("[data-testid=stImage] img").count() >= 4
    page.screenshot(path=str(tmp_path / "mae.png"), full_page=True)
