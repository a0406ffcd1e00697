"""No 500 from data: FHIR-shaped documents with wrong types anywhere give a row, a notice or a clear page.

Two nets: exhaustive (every value of each valid document, one at a time,
replaced by each of a list of wrong values, through the parsing function
itself), and property-based end to end (hypothesis, bounded examples): a valid
document of each kind (discovery, token response, Bundle, ImagingStudy,
Patient, OperationOutcome) has one to three of its values, at any depth,
replaced by any JSON value (including markup); the whole launch runs against
a mocked EHR; the page is never a 500 and never carries the markup unescaped.
"""

from __future__ import annotations

import copy
import json

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from tests.app.conftest import MockedEhr
from tests.support import ISS, PATIENT, TOKEN, UID_A, WELL_KNOWN, registration, searchset, study

MARKUP = "<script>alert(1)</script>"
FHIR_JSON = "application/fhir+json"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.just(MARKUP) | st.just("Patient/other") | st.just(""),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def _paths(value, prefix=()):
    """Every path to a value inside a JSON document (the document itself excluded)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


@st.composite
def mutated(draw, document: dict) -> dict:
    """``document`` with 1-3 of its values replaced by arbitrary JSON."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = draw(json_values)
    return doc


GOOD_TOKEN = {"access_token": "tok-good", "token_type": "Bearer", "expires_in": 3600, "patient": PATIENT,
              "scope": "launch patient/ImagingStudy.rs patient/Patient.rs", "need_patient_banner": True,
              "fhirContext": [{"reference": "ImagingStudy/is-1"}], "smart_style_url": "https://ehr.example.org/s"}
PATIENT_RESOURCE = {"resourceType": "Patient", "id": PATIENT, "birthDate": "1970-01-01", "gender": "female",
                    "name": [{"use": "official", "family": "Doe", "given": ["Jane"]}],
                    "identifier": [{"type": {"coding": [{"code": "MR"}]}, "system": "urn:oid:1.2.3", "value": "M1"}]}
STUDY = study("is-1", UID_A, description="CT Head", numberOfSeries=1, numberOfInstances=2,
              series=[{"uid": "2.25.9", "modality": {"code": "CT"}, "numberOfInstances": 2,
                       "instance": [{"uid": "2.25.9.1"}]}],
              basedOn=[{"identifier": {"type": {"coding": [{"code": "ACSN"}]}, "value": "A1"}}])
OUTCOME = {"resourceType": "OperationOutcome",
           "issue": [{"severity": "warning", "code": "informational", "diagnostics": "Results limited",
                      "details": {"text": "limited"}}]}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One app for the module: every example is a new launch in its own cookie jar."""
    return create_app(registration(), secret_key="wrong-types-" + "k" * 32,
                      store_path=tmp_path_factory.mktemp("store") / "s.sqlite3")


def _run(app, *, well_known=WELL_KNOWN, token=GOOD_TOKEN, bundle=None, patient=PATIENT_RESOURCE):
    """One whole launch against a mocked EHR with the given documents; the last response."""
    app.extensions["imaging_app"].discovery.forget(ISS)
    bundle = bundle if bundle is not None else {**searchset([STUDY]), "entry": searchset([STUDY])["entry"] +
                                                [{"resource": OUTCOME, "search": {"mode": "outcome"}}]}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        ehr = MockedEhr(app.test_client(), mock)
        mock.get(f"{ISS}/.well-known/smart-configuration", body=json.dumps(well_known),
                 content_type="application/json")
        mock.get(f"{ISS}/Patient/{PATIENT}", body=json.dumps(patient), content_type=FHIR_JSON)
        mock.get(f"{ISS}/ImagingStudy", body=json.dumps(bundle), content_type=FHIR_JSON)
        started = ehr.launch()
        if started.status_code != 303:
            return started
        state = dict(p.split("=", 1) for p in started.headers["Location"].split("?", 1)[1].split("&"))["state"]
        mock.post(TOKEN, body=json.dumps(token), content_type="application/json")
        callback = ehr.client.get("/callback", query_string={"code": "c-1", "state": state})
        if callback.status_code != 303:
            return callback
        return ehr.client.get(callback.headers["Location"])


def _check(response) -> None:
    page = response.get_data(as_text=True)
    assert response.status_code != 500, page[:2000]
    assert "Something went wrong" not in page
    assert MARKUP not in page


PROPERTY = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def test_the_unmutated_documents_list_the_study(app):
    response = _run(app)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-study-id="is-1"' in page and "DOE, Jane" in page and "EHR note: Results limited" in page


BUNDLE = {**searchset([STUDY], next_url=f"{ISS}/ImagingStudy?page=2", total=2),
          "entry": searchset([STUDY])["entry"] + [{"resource": OUTCOME, "search": {"mode": "outcome"}}]}
#: kind -> (valid document, how a mutated one is handed to the launch)
KINDS = {
    "discovery": (WELL_KNOWN, lambda doc: {"well_known": doc}),
    "token response": (GOOD_TOKEN, lambda doc: {"token": doc}),
    "Bundle": (BUNDLE, lambda doc: {"bundle": doc}),
    "ImagingStudy": (STUDY, lambda doc: {"bundle": searchset([doc])}),
    "Patient": (PATIENT_RESOURCE, lambda doc: {"patient": doc}),
    "OperationOutcome": (OUTCOME, lambda doc: {"bundle": {**searchset([STUDY]),
                                                          "entry": searchset([STUDY])["entry"] + [{"resource": doc}]}}),
}


@pytest.mark.parametrize("kind", KINDS)
@PROPERTY
@given(data=st.data())
def test_wrong_types_anywhere_never_give_a_500(app, kind, data):
    document, place = KINDS[kind]
    _check(_run(app, **place(data.draw(mutated(document)))))


@pytest.mark.parametrize("where, value", [
    ("subject", "Patient/pt-1001"), ("identifier", 5), ("series", 5), ("modality", [{"coding": 5}]),
    ("started", ["2024"]), ("description", {"text": MARKUP}), ("numberOfSeries", "2"), ("status", 7)])
def test_the_penetration_tests_values_give_a_row(app, where, value):
    response = _run(app, bundle=searchset([{**STUDY, where: value}]))
    assert response.status_code == 200
    assert 'data-study-id="is-1"' in response.get_data(as_text=True)


@pytest.mark.parametrize("bundle", [
    {**searchset([STUDY]), "link": 5}, {**searchset([STUDY]), "entry": 5},
    {**searchset([]), "entry": [{"resource": STUDY, "search": "match"}]},
    {**searchset([STUDY]), "entry": searchset([STUDY])["entry"] + [{"resource": {**OUTCOME, "issue": [
        {"details": "a string"}]}}]}])
def test_the_penetration_tests_bundles_give_a_page(app, bundle):
    _check(_run(app, bundle=bundle))


def test_capabilities_as_a_number_is_ignored(app):
    response = _run(app, well_known={**WELL_KNOWN, "capabilities": 5})
    assert response.status_code == 200


WRONG_VALUES = [None, True, 5, -1, 1.5, "", "x", MARKUP, [], [1], [[1]], {}, {"a": [1]}, [{"code": ["CT"]}]]


def _every_mutation(document: dict):
    """``document`` with each single value, at every path, replaced by each of :data:`WRONG_VALUES`."""
    for path in list(_paths(document)):
        for value in WRONG_VALUES:
            doc = copy.deepcopy(document)
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value
            yield path, doc


def test_every_single_wrong_value_in_a_study_gives_a_summary():
    from app.fhir.imaging import summarize
    from app.fhir.study_list import subject_id
    count = 0
    for path, doc in _every_mutation(STUDY):
        summary = summarize(doc)
        subject_id(doc)
        assert summary.study_instance_uid in (None, UID_A), path
        assert all(isinstance(m, str) for m in summary.modalities), path
        count += 1
    assert count == len(list(_paths(STUDY))) * len(WRONG_VALUES)


def test_every_single_wrong_value_in_a_token_response_is_a_grant_or_a_fact():
    from app.smart.errors import InvalidTokenResponse, NoPatientContext
    from app.smart.tokens import parse_token_response
    for path, doc in _every_mutation(GOOD_TOKEN):
        try:
            grant = parse_token_response(doc, requested="launch")
        except (InvalidTokenResponse, NoPatientContext):
            continue
        assert isinstance(grant.access_token, str) and isinstance(grant.scope, str), path


def test_every_single_wrong_value_in_a_patient_is_a_banner_or_a_value_error():
    from app.fhir.patient import banner_from_resource
    for path, doc in _every_mutation(PATIENT_RESOURCE):
        try:
            banner = banner_from_resource(doc, PATIENT)
        except ValueError:
            continue
        assert banner.name is None or isinstance(banner.name, str), path


def test_every_single_wrong_value_in_discovery_or_an_outcome_is_read_or_ignored():
    from app.fhir.outcome import outcome_text
    from app.smart.discovery import SmartDiscovery
    for path, doc in _every_mutation(WELL_KNOWN):
        config = SmartDiscovery._from_well_known(ISS, doc)
        assert config is None or isinstance(config.capabilities, frozenset), path
    for path, doc in _every_mutation(OUTCOME):
        assert isinstance(outcome_text(doc), str), path
