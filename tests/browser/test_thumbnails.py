"""Thumbnails in the EHR's frame: real pixels for studies with images, a placeholder for those without."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .pages import STUDY_ROWS, launch_to_list

pytestmark = pytest.mark.browser

#: variance of the grey levels of an <img> drawn on a canvas (0 for a blank or broken image)
PIXEL_SPREAD = """img => {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0, sq = 0, n = data.length / 4;
  for (let i = 0; i < data.length; i += 4) { const v = (data[i] + data[i + 1] + data[i + 2]) / 3; sum += v; sq += v * v; }
  return n ? sq / n - (sum / n) * (sum / n) : 0;
}"""


def test_studies_with_images_show_thumbnails_with_pixels(page, servers):
    app = launch_to_list(page, servers, "pt-1001")
    thumbnail = app.locator(f'{STUDY_ROWS}[data-study-id="is-1001-ct"] img.study-thumbnail')
    thumbnail.scroll_into_view_if_needed()
    expect(thumbnail).to_have_attribute("alt", "Preview of CT Chest without contrast 2004-01-19 07:27")
    app.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())
    assert thumbnail.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [128, 128]
    assert thumbnail.evaluate(PIXEL_SPREAD) > 100  # a CT slice, not a blank box


def test_a_study_without_a_uid_shows_a_placeholder(page, servers):
    app = launch_to_list(page, servers, "pt-1005")
    placeholders = app.locator(f"{STUDY_ROWS} [data-thumbnail-placeholder]")
    expect(placeholders.first).to_have_attribute("aria-label", "No preview")
    assert app.locator(f"{STUDY_ROWS} img.study-thumbnail").count() + placeholders.count() == \
        app.locator(STUDY_ROWS).count()
