"""The Embeddings page in headless Chromium: hover a point and see its thumbnail, click it and see
its nearest neighbours."""

import re
import time

import pytest
from conftest import wait_idle

pytestmark = pytest.mark.browser


def point_centres(page, limit=40):
    """Screen centres of the first scatter points (SVG paths plotly draws per marker)."""
    points = page.locator(".st-key-emb_scatter .js-plotly-plot .scatterlayer path.point")
    points.nth(limit - 1).wait_for(state="attached", timeout=60_000)
    centres = []
    for i in range(limit):
        box = points.nth(i).bounding_box()
        if box and box["width"] > 0:
            centres.append((box["x"] + box["width"] / 2, box["y"] + box["height"] / 2))
    return centres


def test_hover_shows_thumbnail_and_click_shows_neighbours(server, page, tmp_path):
    page.goto(f"{server}/embeddings")
    page.get_by_text("random init", exact=True).click(timeout=60_000)
    page.get_by_text("PCA of 1000 embeddings").wait_for(timeout=90_000)
    tip = page.locator("#ssl-thumb")
    label = page.locator(".st-key-emb_scatter .hoverlayer .hovertext")
    wait_idle(page)
    for x, y in point_centres(page):
        page.mouse.move(x, y)
        try:
            tip.wait_for(state="visible", timeout=3_000)
            time.sleep(0.5)  # plotly throttles hover events: let the last one land
            break
        except Exception:  # noqa: BLE001 - a point hidden under another: try the next one
            continue
    else:
        pytest.fail("hovering the scatter never showed a thumbnail")
    index = int(tip.get_attribute("data-index"))
    # The thumbnail is the hovered point's: plotly's own hover label names the same index.
    assert re.search(rf"#{index}\b", label.first.text_content())
    assert f"#{index}" in tip.text_content()
    image = tip.locator(".ssl-thumb-image")
    assert "data:image/jpeg;base64" in image.evaluate("e => getComputedStyle(e).backgroundImage")
    assert image.bounding_box()["width"] == 96
    page.screenshot(path=str(tmp_path / "hover.png"))
    page.mouse.click(x, y)
    header = page.get_by_text(re.compile(r"and its 8 nearest neighbours")).first
    header.wait_for(timeout=60_000)
    header.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "neighbours.png"))
    assert header.text_content().startswith(f"#{index} ("), header.text_content()
    page.mouse.move(5, 5)
    tip.wait_for(state="hidden", timeout=10_000)
