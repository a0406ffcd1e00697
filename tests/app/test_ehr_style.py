"""The EHR's look (SMART 2.2 §Styling): strict validation, the guarded fetch, the launch-bound stylesheet."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs

import pytest
import responses

from app.smart.style import stylesheet, validate_style
from tests.app.conftest import good_token
from tests.support import ISS, PATIENT, TOKEN, searchset, study

FHIR_JSON = "application/fhir+json"
STYLE_URL = "https://ehr.example.org/ehr/smart-style.json"
SANDBOX_STYLE = {
    "color_background": "#f6f8fa", "color_error": "#b42318", "color_highlight": "#1f6feb",
    "color_modal_backdrop": "#00000080", "color_success": "rgb(26, 127, 55)", "color_text": "black",
    "dim_border_radius": "6px", "dim_font_size": "15px", "dim_spacing_size": "1.5em",
    "font_family_body": "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
    "font_family_heading": '"Helvetica Neue", sans-serif',
}


def test_every_value_of_a_good_document_is_kept():
    assert validate_style(SANDBOX_STYLE) == SANDBOX_STYLE


@pytest.mark.parametrize(("key", "value"), [
    ("color_text", "red; background: url(https://evil.example/x)"),
    ("color_text", "expression(alert(1))"),
    ("color_text", "#12345"),
    ("color_text", "rgb(1,2)"),
    ("color_text", "notacolor"),
    ("color_background", "red}body{display:none"),
    ("dim_font_size", "15"),
    ("dim_font_size", "15px; color: red"),
    ("color_text", "#fff;}"),
    ("dim_font_size", "-3px"),
    ("dim_font_size", "calc(1px + 2px)"),
    ("font_family_body", "Arial; } * { color: red"),
    ("font_family_body", "'Arial\\27 '"),
    ("font_family_body", ",".join(["Arial"] * 11)),
    ("font_family_body", "url(x)"),
    ("smart_logo", "#fff"),
    ("color_Text", "#fff"),
    ("color_text", 12),
    ("dim_spacing_size", "1" * 201 + "px"),
])
def test_anything_outside_the_strict_grammar_is_dropped(key, value):
    assert validate_style({"color_highlight": "#0b5cad", key: value}) == {"color_highlight": "#0b5cad"}


def test_not_an_object_gives_nothing():
    assert validate_style(["#fff"]) == {} and stylesheet({}) == ""


def test_stylesheet_is_css_variables_only():
    assert stylesheet({"color_text": "#111", "dim_border_radius": "6px"}) == \
        ":root {\n  --smart-color-text: #111;\n  --smart-dim-border-radius: 6px;\n}\n"


def _launch(ehr, style_url):
    ehr.well_known()
    ehr.mock.get(f"{ISS}/ImagingStudy", content_type=FHIR_JSON, body=json.dumps(searchset([study("is-1", "1.2.3")])))
    ehr.mock.get(re.compile(re.escape(ISS) + r"/Patient/[^/]+$"), content_type=FHIR_JSON,
                 body=json.dumps({"resourceType": "Patient", "id": PATIENT}))
    response = ehr.launch()
    state = parse_qs(response.headers["Location"].split("?", 1)[1])["state"][0]
    ehr.mock.add(responses.POST, TOKEN, json=good_token(**({"smart_style_url": style_url} if style_url else {})))
    callback = ehr.client.get("/callback", query_string={"code": "c-1", "state": state})
    assert callback.status_code == 303
    return callback.headers["Location"]


def test_the_launch_stylesheet_carries_the_ehrs_validated_style_fetched_once(ehr, app):
    ehr.mock.get(STYLE_URL, json={**SANDBOX_STYLE, "color_text": "red;}", "smart_logo": "x"})
    page_url = _launch(ehr, STYLE_URL)
    launch_id = page_url.split("/")[2]
    html = ehr.client.get(page_url).get_data(as_text=True)
    assert f'<link rel="stylesheet" id="ehr-style" href="/l/{launch_id}/style.css">' in html
    first = ehr.client.get(f"/l/{launch_id}/style.css")
    again = ehr.client.get(f"/l/{launch_id}/style.css")
    css = first.get_data(as_text=True)
    assert first.status_code == 200 and first.headers["Content-Type"] == "text/css; charset=utf-8"
    assert first.headers["Cache-Control"] == "private, max-age=300"
    assert "--smart-color-highlight: #1f6feb;" in css and "--smart-dim-border-radius: 6px;" in css
    assert "--smart-font-family-body: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;" in css
    assert "color-text" not in css and "logo" not in css
    assert again.get_data(as_text=True) == css
    calls = [c for c in ehr.mock.calls if c.request.url == STYLE_URL]
    assert len(calls) == 1
    assert "Authorization" not in calls[0].request.headers  # no token goes to the style document
    assert "style-src 'self'" in first.headers["Content-Security-Policy"]
    # another browser gets no stylesheet of this launch
    assert app.test_client().get(f"/l/{launch_id}/style.css").status_code == 404


def test_a_style_on_another_origin_is_not_fetched(ehr):
    ehr.mock.get("https://elsewhere.example.com/style.json", json=SANDBOX_STYLE)
    page_url = _launch(ehr, "https://elsewhere.example.com/style.json")
    launch_id = page_url.split("/")[2]
    css = ehr.client.get(f"/l/{launch_id}/style.css")
    assert css.status_code == 200 and css.get_data(as_text=True) == ""
    assert not [c for c in ehr.mock.calls if "elsewhere" in c.request.url]


def test_no_style_url_no_link(ehr):
    page_url = _launch(ehr, None)
    html = ehr.client.get(page_url).get_data(as_text=True)
    assert 'id="ehr-style"' not in html
