"""Shared test helpers: registrations, a mocked EHR (responses), live servers on loopback."""

from __future__ import annotations

import copy
import json
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from werkzeug.serving import make_server

from tests.environment import require

REPO = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures" / "fhir"

# Common values of ../shared/cases/field-cases.md
ISS = "https://ehr.example.org/fhir"
PATIENT = "pt-1001"
VIEWER = "https://viewer.example.org/IHEInvokeImageDisplay"
UID_A = "2.25.17888725185605931195712849663681676109"
UID_B = "2.25.115801472636246741886468600046142957564"
AUTHORIZE = "https://ehr.example.org/oauth2/authorize"
TOKEN = "https://ehr.example.org/oauth2/token"
WELL_KNOWN = {
    "authorization_endpoint": AUTHORIZE,
    "token_endpoint": TOKEN,
    "code_challenge_methods_supported": ["S256"],
    "capabilities": ["launch-ehr", "launch-standalone", "client-public", "context-ehr-patient", "permission-v2"],
}
REDIRECT_URI = "https://app.example.net/callback"


def registration(iss: str = ISS, viewer: str = VIEWER, **viewer_extra) -> dict:
    """A smart-launch.json document for the field cases."""
    return {
        "app": {"launch_uri": "https://app.example.net/launch", "redirect_uri": REDIRECT_URI},
        "ehrs": [{"name": "Example EHR", "iss": iss, "client_id": "imaging-app",
                  "frame_ancestors": ["https://ehr.example.org"]}],
        "viewer": {"base_url": viewer, "viewerType": "IHE_BIR", **viewer_extra},
        "fhir": {"page_size": 50, "max_pages": 5, "connect_timeout": 1, "read_timeout": 2,
                 "study_list_ttl_seconds": 60},
    }


def sandbox_registration(app_origin: str, ehr_origin: str, *, name: str = "Sandbox EHR",
                         fhir: dict | None = None, **ehr_extra) -> dict:
    """The app's ``smart-launch.json`` for the sandbox EHR at ``ehr_origin`` (the app served at ``app_origin``).

    ``ehr_extra`` overrides the EHR entry (``client_id``, ``client_secret_env``, ...).
    """
    registration_doc = {
        "app": {"launch_uri": f"{app_origin}/launch", "redirect_uri": f"{app_origin}/callback"},
        "ehrs": [{"name": name, "iss": f"{ehr_origin}/fhir", "client_id": "imaging-app",
                  "scopes": ["online_access"], "frame_ancestors": [ehr_origin], **ehr_extra}],
        "viewer": {"base_url": f"{ehr_origin}/IHEInvokeImageDisplay", "viewerType": "IHE_BIR", "frameable": True},
    }
    if fhir:
        registration_doc["fhir"] = fhir
    return registration_doc


OWN_FIXTURES = REPO / "tests" / "fixtures"


def fixture_json(name: str) -> dict:
    """A file of ../shared/fixtures/fhir as a dict; skips the test (fails on CI) when ../shared is absent."""
    require(SHARED_FIXTURES.is_dir(), "../shared/fixtures/fhir not beside the checkout (the HL7 examples; "
                                      "CI provides it)")
    return json.loads((SHARED_FIXTURES / name).read_text(encoding="utf-8"))


def own_fixture(name: str) -> dict:
    """A file of tests/fixtures (the app's own examples, always present) as a dict."""
    return json.loads((OWN_FIXTURES / name).read_text(encoding="utf-8"))


def query_of(url: str) -> dict[str, str]:
    """Single-valued query parameters of a URL (decoded)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def study(study_id: str, uid: str | None, started: str = "2024-01-01T10:00:00Z", patient: str = PATIENT,
          modality: str = "CT", **extra) -> dict:
    """A minimal R4 ImagingStudy."""
    resource = {"resourceType": "ImagingStudy", "id": study_id, "status": "available",
                "subject": {"reference": f"Patient/{patient}"}, "started": started,
                "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": modality}]}
    if uid:
        resource["identifier"] = [{"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}]
    resource.update(extra)
    return resource


def searchset(resources: list[dict], *, next_url: str | None = None, total: int | None = None,
              modes: list[str | None] | None = None) -> dict:
    """A searchset Bundle around resources (``modes`` sets search.mode per entry; None omits it)."""
    entries = []
    for index, resource in enumerate(resources):
        entry = {"fullUrl": f"{ISS}/{resource['resourceType']}/{resource.get('id')}", "resource": resource}
        mode = (modes[index] if modes else "match")
        if mode is not None:
            entry["search"] = {"mode": mode}
        entries.append(entry)
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries,
              "link": [{"relation": "self", "url": f"{ISS}/ImagingStudy"}]}
    if total is not None:
        bundle["total"] = total
    if next_url:
        bundle["link"].append({"relation": "next", "url": next_url})
    return copy.deepcopy(bundle)


@contextmanager
def live_sandbox(app_origin: str = "http://127.0.0.1:8000", **config):
    """The sandbox EHR on a free loopback port (reached as ``localhost``), configured with ``config``; yields the port."""
    from sandbox import create_app as create_sandbox
    with live_server(lambda port: create_sandbox({"PUBLIC_BASE_URL": f"http://localhost:{port}",
                                                  "APP_ORIGIN": app_origin, **config})) as port:
        yield port


@contextmanager
def live_server(build_app, host: str = "127.0.0.1"):
    """Serve a WSGI app on a free loopback port in a thread.

    ``build_app(port) -> app``: the app is built once the port is known (its
    URLs depend on it). Yields the port; the server stops on exit.
    """
    server = make_server(host, 0, lambda environ, start_response: [], threaded=True)
    port = server.server_port
    server.app = build_app(port)
    thread = threading.Thread(target=server.serve_forever, name=f"live-{port}", daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        thread.join(timeout=5)
