"""smart-launch.json validation: every bad key stops start-up with a message naming it."""

from __future__ import annotations

import json

import pytest

from app import create_app
from app.config import ConfigError, load_settings, parse_settings
from tests.support import REPO, registration


def test_shipped_registration_is_valid():
    settings = load_settings(REPO / "smart-launch.json", environ={})
    assert settings.find_ehr("http://localhost:8800/fhir").client_id == "imaging-app"
    assert settings.viewer.base_url.endswith("/IHEInvokeImageDisplay")


@pytest.mark.parametrize("mutate, key", [
    (lambda r: r.pop("viewer"), "(top level)"),
    (lambda r: r["ehrs"][0].update(iss="ftp://ehr.example.org/fhir"), "ehrs[0].iss"),
    (lambda r: r["ehrs"][0].pop("client_id"), "ehrs[0]"),
    (lambda r: r["ehrs"][0].update(client_secret="s3cret"), "ehrs[0]"),
    (lambda r: r["viewer"].update(frameable="yes"), "viewer.frameable"),
    (lambda r: r["app"].update(redirect_uri=""), "app.redirect_uri"),
    (lambda r: r["fhir"].update(page_size=0), "fhir.page_size"),
    (lambda r: r.update(extra=1), "(top level)"),
])
def test_bad_keys_are_named(mutate, key):
    raw = registration()
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, source="smart-launch.json", environ={})
    assert str(info.value).startswith(f"smart-launch.json: {key}:")


def test_duplicate_iss_is_refused():
    raw = registration()
    raw["ehrs"].append({**raw["ehrs"][0], "name": "Again", "iss": raw["ehrs"][0]["iss"] + "/"})
    with pytest.raises(ConfigError, match=r"ehrs\[1\].iss: same FHIR base"):
        parse_settings(raw, environ={})


def test_client_secret_comes_from_the_named_environment_variable():
    raw = registration()
    raw["ehrs"][0]["client_secret_env"] = "EXAMPLE_EHR_SECRET"
    with pytest.raises(ConfigError, match="EXAMPLE_EHR_SECRET is not set"):
        parse_settings(raw, environ={})
    settings = parse_settings(raw, environ={"EXAMPLE_EHR_SECRET": "x"})
    assert settings.ehrs[0].client_secret_env == "EXAMPLE_EHR_SECRET"


def test_config_path_from_environment_and_readable_errors(tmp_path, monkeypatch):
    path = tmp_path / "reg.json"
    path.write_text("{not json", encoding="utf-8")
    monkeypatch.setenv("SMART_LAUNCH_CONFIG", str(path))
    with pytest.raises(ConfigError, match="not valid JSON"):
        create_app(secret_key="k", store_path=tmp_path / "s.db")
    path.write_text(json.dumps(registration()), encoding="utf-8")
    app = create_app(secret_key="k", store_path=tmp_path / "s.db")
    assert app.extensions["imaging_app"].settings.ehrs[0].iss == "https://ehr.example.org/fhir"
    monkeypatch.setenv("SMART_LAUNCH_CONFIG", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="file not found"):
        create_app(secret_key="k")


def test_iss_matching_is_exact_not_prefix():
    settings = parse_settings(registration(iss="https://EHR.example.org:443/fhir"), environ={})
    assert settings.find_ehr("https://ehr.example.org/fhir") is not None
    assert settings.find_ehr("https://ehr.example.org/fhir/") is not None
    assert settings.find_ehr("https://ehr.example.org/fhir/x") is None
    assert settings.find_ehr("https://ehr.example.org/fhi") is None
    assert settings.find_ehr("https://ehr.example.org/FHIR") is None


def test_plain_http_iss_only_on_loopback():
    with pytest.raises(ConfigError, match=r"ehrs\[0\].iss: must be https"):
        parse_settings(registration(iss="http://ehr.hospital.internal/fhir"), environ={})
    for iss in ("http://localhost:8800/fhir", "http://127.0.0.1:9/fhir"):
        assert parse_settings(registration(iss=iss), environ={}).ehrs[0].iss == iss
