"""Shareable links in headless Chromium: what only a browser shows (the address bar, history, the menu)."""

import re

import pytest

pytestmark = pytest.mark.browser


def slider_value(page, label: str) -> str:
    slider = page.locator("[data-testid=stSlider]", has_text=label).first
    return slider.locator("[data-testid=stSliderThumbValue]").inner_text(timeout=60_000)


def test_a_link_opens_the_view_knobs_write_the_address_bar_back_restores_the_menu_clears(server, page):
    page.goto(f"{server}/concepts?tab=masking&ratio=0.5&v=1")
    page.get_by_role("tab", name="MAE masking", selected=True).wait_for(timeout=120_000)
    assert slider_value(page, "mask ratio") == "0.50"
    seed = page.get_by_label("seed", exact=True)
    seed.fill("7")
    seed.press("Enter")
    page.wait_for_url(re.compile(r"seed=7"), timeout=60_000)  # published without a reload
    assert "ratio=0.5" in page.url and "v=1" in page.url
    page.go_back()  # the browser's history holds each published state
    page.wait_for_url(re.compile(r"concepts\?tab=masking&ratio=0.5&v=1$"), timeout=60_000)
    page.wait_for_function("() => document.querySelector('input[aria-label=seed]').value === '0'", timeout=60_000)
    page.get_by_role("link", name="Augmentations").click()
    page.wait_for_url(re.compile(r"/augmentations$"), timeout=60_000)  # the menu takes no parameters along
    page.get_by_role("link", name="Concepts").click()
    page.wait_for_url(re.compile(r"/concepts$"), timeout=60_000)
    page.get_by_role("tab", name="Cosine similarity", selected=True).wait_for(timeout=60_000)
    page.get_by_role("tab", name="MAE masking").click()
    page.wait_for_url(re.compile(r"concepts\?tab=masking&v=1$"), timeout=60_000)
    assert slider_value(page, "mask ratio") == "0.75"  # the page opened from the menu shows its defaults
