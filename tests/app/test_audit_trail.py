"""The audit trail (FHIR R4 AuditEvent, IHE BALP shapes) for a scripted session, the FHIR sink, request logs,
X-Request-ID upstream, metrics and /readyz."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading

import pytest
import responses
from flask import Flask, request

from app import create_app
from app.audit import AUDIT_LIMITS, Actor, AuditEventBuilder, FhirAuditSink
from app.outbound import OutboundClient
from app.observability.requests import LOGGER_NAME, launch_hash
from sandbox import create_app as create_sandbox
from tests.app.conftest import MockedEhr, good_token
from tests.app.test_end_to_end import APP_ORIGIN, SandboxDriver, _launch_id
from tests.support import ISS, PATIENT, live_server, registration, sandbox_registration, searchset, study

UID = "2.25.17888725185605931195712849663681676109"


@pytest.fixture(scope="module")
def sandbox_base():
    with live_server(lambda port: create_sandbox({"PUBLIC_BASE_URL": f"http://localhost:{port}",
                                                  "APP_ORIGIN": APP_ORIGIN})) as port:
        yield f"http://localhost:{port}"


def _shape(event: dict) -> tuple:
    return (event["type"]["code"], event["subtype"][0]["code"], event["action"], event["outcome"])


def test_a_scripted_session_writes_exactly_its_audit_events(sandbox_base, tmp_path):
    trail = tmp_path / "audit.jsonl"
    registration_doc = sandbox_registration(APP_ORIGIN, sandbox_base)
    registration_doc["audit"] = {"path": str(trail), "source": "imaging-test"}
    ehr = SandboxDriver(create_app(registration_doc, secret_key="e2e", store_path=tmp_path / "l.sqlite3").test_client(),
                        sandbox_base)
    page = ehr.launch_to_list("pt-1002").get_data(as_text=True)                    # launch + list
    assert ehr.client.get(f"/l/{_launch_id(page)}/?study=is-1002-ct").status_code == 200  # list + viewer
    assert ehr.launch_to_list("pt-1002", faults={"deny": True}).status_code == 403  # failed launch
    text = trail.read_text(encoding="utf-8")
    events = [json.loads(line) for line in text.splitlines()]
    assert [_shape(e) for e in events] == [
        ("110114", "110122", "E", "0"), ("rest", "search-type", "E", "0"),
        ("rest", "search-type", "E", "0"), ("110103", "read", "R", "0"), ("110114", "110122", "E", "8")]
    login, query, _, viewer, failed = events
    assert login["agent"][0]["who"] == {"reference": "Practitioner/dr-demo", "display": "Dr. Alex Morgan"}
    assert login["agent"][1]["who"] == {"identifier": {"system": f"{sandbox_base}/fhir", "value": "imaging-app"}}
    assert login["entity"] == [{"what": {"reference": "Patient/pt-1002"},
                                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                         "code": "1", "display": "Person"},
                                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                                         "code": "1", "display": "Patient"}}]
    assert login["source"]["observer"] == {"display": "imaging-test"}
    assert base64.b64decode(query["entity"][1]["query"]).decode() == "patient=pt-1002&_sort=-started&_count=200"
    assert query["entity"][1]["detail"] == [{"type": "count", "valueString": "1"}]
    assert [e["what"] for e in viewer["entity"]] == [
        {"reference": "Patient/pt-1002"},
        {"identifier": {"system": "urn:dicom:uid", "value": "urn:oid:1.2.276.0.7230010.3.1.2.296485376.1.1521713414.1800996"}}]
    assert failed["outcomeDesc"] == "AuthorizationRefused" and failed["entity"] == []
    assert failed["agent"][0]["who"]["identifier"]["value"] == "imaging-app"
    assert "access_token" not in text and "id_token" not in text and "code=" not in text and "nonce" not in text


def test_the_fhir_sink_posts_batches_and_retries_a_503(tmp_path):
    received, answers = [], [503]
    receiver = Flask("audit-receiver")

    @receiver.post("/fhir")
    def take():
        if answers:
            return {"resourceType": "OperationOutcome"}, answers.pop(0)
        received.append(request.get_json(force=True))
        return {"resourceType": "Bundle", "type": "batch-response"}, 200

    with live_server(lambda port: receiver) as port:
        sink = FhirAuditSink(f"http://127.0.0.1:{port}/fhir", OutboundClient(1, 2, limits={"audit": AUDIT_LIMITS}), batch_size=2, retry_delay=0.01)
        builder = AuditEventBuilder()
        for _ in range(3):
            sink.write(builder.launch(Actor("imaging-app", ISS), PATIENT))
        assert sink.flush(10)
    assert sink.sent == 3 and sink.failed == 0
    assert all(1 <= len(b["entry"]) <= 2 for b in received)  # batch_size 2; the 503'd batch was re-sent
    assert sum(len(b["entry"]) for b in received) == 3
    assert all(b["type"] == "batch" and e["request"] == {"method": "POST", "url": "AuditEvent"}
               for b in received for e in b["entry"])


@pytest.fixture
def mocked(tmp_path):
    doc = registration()
    doc["observability"] = {"log_format": "json", "metrics": {"enabled": True}}
    app = create_app(doc, secret_key="test-secret", store_path=tmp_path / "launches.sqlite3")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield MockedEhr(app.test_client(), mock)


def test_one_log_line_per_request_and_the_request_id_goes_upstream(mocked):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger(LOGGER_NAME).addHandler(handler)
    try:
        mocked.well_known()
        callback = mocked.authorized(good_token())
        launch_id = callback.headers["Location"].split("/l/")[1].split("/")[0]
        mocked.mock.get(f"{ISS}/Patient/{PATIENT}", json={"resourceType": "Patient", "id": PATIENT})
        mocked.mock.get(f"{ISS}/ImagingStudy", json=searchset([study("s1", UID)]))
        listed = mocked.client.get(f"/l/{launch_id}/", headers={"X-Request-ID": "req-42"})
    finally:
        logging.getLogger(LOGGER_NAME).removeHandler(handler)
    assert listed.status_code == 200 and listed.headers["X-Request-ID"] == "req-42"
    fhir_calls = mocked.calls_to("/ImagingStudy") + mocked.calls_to("/Patient/")
    assert {c.request.headers["X-Request-ID"] for c in fhir_calls} == {"req-42"}
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(l["method"], l["route"], l["status"]) for l in lines] == [
        ("GET", "/launch", 303), ("GET", "/callback", 303), ("GET", "/l/<launch_id>/", 200)]
    last = lines[-1]
    assert last["request_id"] == "req-42" and last["upstream_calls"] == 2 and last["launch"] == launch_hash(launch_id)
    assert launch_id not in stream.getvalue() and PATIENT not in stream.getvalue() and "tok-good" not in stream.getvalue()
    assert lines[1]["upstream_calls"] == 1  # the token request


def test_metrics_are_allowlisted_and_count_launches_and_errors(mocked):
    mocked.well_known()
    assert mocked.authorized(good_token()).status_code == 303
    assert mocked.client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403
    body = mocked.client.get("/metrics").get_data(as_text=True)
    assert 'imaging_launches_total{outcome="success"}' in body
    assert 'imaging_upstream_request_seconds_count{kind="token"}' in body
    mocked.client.get("/l/no-such-launch/")
    body = mocked.client.get("/metrics").get_data(as_text=True)
    assert 'imaging_errors_total{class="LaunchNotFound"}' in body


def test_metrics_are_off_by_default_and_readyz_checks_the_store(app):
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/readyz").get_json() == {"status": "ready"}
    store = app.extensions["imaging_app"].store

    def broken(_launch_id):
        from app.launches.errors import StoreUnavailable
        raise StoreUnavailable("x", "disk I/O error")

    store.reload = broken
    response = client.get("/readyz")
    assert response.status_code == 503 and response.get_json() == {"status": "not-ready", "failing": "store"}
