"""Unit checks: the expiry margin, the JWKS refetch budget, fhirUser references, fhirContext parsing."""

from __future__ import annotations

import pytest
import responses
from joserfc.jwk import RSAKey

from app.launches.context import expiry_margin, fhir_user_reference
from app.outbound import OutboundClient
from app.smart.jwks import JWKS_LIMITS, JwksCache
from app.smart.tokens import parse_token_response


@pytest.mark.parametrize("lifetime, margin", [(6, 0.6), (100, 10), (3600, 10), (0, 0), (None, 10)])
def test_the_expiry_margin_is_ten_percent_capped_at_ten_seconds(lifetime, margin):
    assert expiry_margin(lifetime) == pytest.approx(margin)


def test_an_unknown_kid_refetches_at_most_six_times_a_minute():
    now = [1000.0]
    key = RSAKey.generate_key(2048).as_dict(private=False)
    cache = JwksCache(OutboundClient(1, 1, limits={"jwks": JWKS_LIMITS}), clock=lambda: now[0])
    with responses.RequestsMock() as mock:
        mock.get("https://ehr.example.org/jwks", json={"keys": [{**key, "kid": "k1"},
                                                                  {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]})
        keys = cache.keys("https://ehr.example.org/jwks", "k1")
        assert [k.kid for k in keys.keys] == ["k1"]  # the symmetric key is never kept
        for _ in range(10):
            cache.keys("https://ehr.example.org/jwks", "made-up")
        assert cache.fetches == 1 + 6
        now[0] += 61
        cache.keys("https://ehr.example.org/jwks", "made-up")
        assert cache.fetches == 8
        cache.keys("https://ehr.example.org/jwks", "k1")
        assert cache.fetches == 8


@pytest.mark.parametrize("fhir_user, reference", [
    ("Practitioner/dr-demo", "Practitioner/dr-demo"),
    ("https://ehr.example.org/fhir/Practitioner/dr-demo", "Practitioner/dr-demo"),
    ("https://other.example.org/fhir/Practitioner/dr-demo", None),
    ("Organization/o1", None), ("RelatedPerson/rp-1", "RelatedPerson/rp-1"), (None, None),
])
def test_fhir_user_references(fhir_user, reference):
    assert fhir_user_reference("https://ehr.example.org/fhir", fhir_user) == reference


def test_fhir_context_intent_and_tenant_are_validated_and_bounded():
    grant = parse_token_response({
        "access_token": "t", "token_type": "Bearer", "patient": "p1", "encounter": "bad id!",
        "fhirContext": ["DiagnosticReport/dr-1", {"reference": "https://x/ServiceRequest/1"}, {"reference": "#c"},
                        {"reference": "DiagnosticReport/dr-1"}] + [f"ServiceRequest/s{i}" for i in range(30)],
        "intent": "x" * 201, "tenant": "hospital a"}, requested="launch")
    assert grant.encounter is None and grant.intent is None and grant.tenant is None
    assert len(grant.fhir_context) == 20
    assert grant.fhir_context[0].reference == "DiagnosticReport/dr-1"
    assert grant.to_json()["fhir_context"][0] == {"resource_type": "DiagnosticReport", "id": "dr-1", "role": None}
    assert type(grant).from_json(grant.to_json()) == grant
