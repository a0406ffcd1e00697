"""The user's identity against the live sandbox EHR: id_token validation (OIDC Core §3.1.3.7), JWKS caching and
rotation, the signed-in user in the header, the launch context, the expiry margin."""

from __future__ import annotations

import re

import pytest

from tests.app.test_end_to_end import APP_ORIGIN, _driver, _ids, _launch_id
from tests.support import live_sandbox as _sandbox
from tests.support import query_of


@pytest.fixture
def ehr(sandbox_base, tmp_path):
    return _driver(sandbox_base, tmp_path)


def _services(ehr):
    return ehr.client.application.extensions["imaging_app"]


def _stored(ehr, page: str):
    return _services(ehr).store.reload(_launch_id(page)).state


def test_authorize_asks_for_openid_fhiruser_with_a_nonce(ehr):
    launch = ehr.ehr_launch("pt-1002")
    started = ehr.client.get(launch["launch_url"][len(APP_ORIGIN):])
    params = query_of(started.headers["Location"])
    assert params["scope"].split()[4:6] == ["openid", "fhirUser"]
    assert len(params["nonce"]) == 43


def test_a_valid_id_token_signs_the_user_in_and_the_header_names_them(ehr):
    response = ehr.launch_to_list("pt-1002")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<span id="signed-in-user">Dr. Alex Morgan</span>' in page
    user = _stored(ehr, page).user
    assert user.subject == "dr-demo"
    assert user.fhir_user == f"{ehr.ehr_base}/fhir/Practitioner/dr-demo"
    assert user.reference == "Practitioner/dr-demo"
    assert _services(ehr).jwks.fetches == 1


@pytest.mark.parametrize("fault, detail", [
    ("bad-signature", "signature does not verify"),
    ("wrong-aud", "issued for another application"),
    ("wrong-iss", "issued by another server"),
    ("expired", "The identity token has expired."),
    ("nonce-mismatch", "nonce mismatch"),
    ("alg-none", "not signed with an accepted algorithm"),
    ("hs256-with-public-key", "not signed with an accepted algorithm"),
])
def test_an_invalid_id_token_ends_the_launch_with_its_page(ehr, fault, detail):
    response = ehr.launch_to_list("pt-1002", faults={"id_token": fault})
    assert response.status_code == 502
    page = response.get_data(as_text=True)
    assert "The EHR&#39;s sign-in could not be verified" in page
    assert detail in page
    assert 'data-launch-id' not in page and 'id="signed-in-user"' not in page


def test_an_unknown_kid_is_refused_after_exactly_one_jwks_refetch(ehr):
    assert ehr.launch_to_list("pt-1002").status_code == 200
    jwks = _services(ehr).jwks
    assert jwks.fetches == 1
    response = ehr.launch_to_list("pt-1002", faults={"id_token": "unknown-kid"})
    assert response.status_code == 502
    assert "signed with a key the EHR does not publish" in response.get_data(as_text=True)
    assert jwks.fetches == 2


def test_a_rotated_key_is_accepted_after_one_refetch(tmp_path):
    with _sandbox() as port:
        ehr = _driver(f"http://localhost:{port}", tmp_path)
        assert ehr.launch_to_list("pt-1002").status_code == 200
        jwks = _services(ehr).jwks
        assert jwks.fetches == 1
        response = ehr.launch_to_list("pt-1002", faults={"id_token": "rotate-key"})
        assert response.status_code == 200
        assert "Dr. Alex Morgan" in response.get_data(as_text=True)
        assert jwks.fetches == 2
        assert ehr.launch_to_list("pt-1002").status_code == 200  # the new key is cached now
        assert jwks.fetches == 2


def test_without_openid_support_no_identity_is_asked_for(sandbox_base, tmp_path):
    ehr = _driver(sandbox_base, tmp_path, openid=False)
    launch = ehr.ehr_launch("pt-1002")
    params = query_of(ehr.client.get(launch["launch_url"][len(APP_ORIGIN):]).headers["Location"])
    assert "openid" not in params["scope"].split() and "nonce" not in params
    page = ehr.launch_to_list("pt-1002").get_data(as_text=True)
    assert 'id="signed-in-user"' not in page
    assert _stored(ehr, page).user is None


def test_launch_context_encounter_fhircontext_intent_tenant_are_kept_and_encounter_shown(ehr):
    response = ehr.launch_to_list("pt-1001", encounter=True, intent="compare-prior", tenant="hospital-a",
                                  fhir_context=["DiagnosticReport/dr-1", {"reference": "ServiceRequest/sr-9",
                                                                          "role": "urn:example:order"}])
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<span id="launch-encounter">enc-pt-1001</span>' in page
    grant = _stored(ehr, page).grant
    assert grant.encounter == "enc-pt-1001"
    assert grant.intent == "compare-prior"
    assert grant.tenant == "hospital-a"
    assert [(r.resource_type, r.id, r.role) for r in grant.context_references("DiagnosticReport", "ServiceRequest")] \
        == [("DiagnosticReport", "dr-1", None), ("ServiceRequest", "sr-9", "urn:example:order")]


def test_a_six_second_token_is_used_not_renewed_at_once(ehr):
    # With a fixed 10 s margin a 6 s token is "expired" on arrival, and the failing refresh ends the launch.
    response = ehr.launch_to_list("pt-1002", access_token_lifetime=6, faults={"refresh_fails": True})
    assert response.status_code == 200
    assert _ids(response.get_data(as_text=True)) == ["is-1002-ct"]
    grant = _stored(ehr, response.get_data(as_text=True)).grant
    assert grant.lifetime_seconds == 6
