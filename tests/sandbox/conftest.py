"""Fixtures for the sandbox EHR tests: an app, a test client, and a SMART flow driver over plain HTTP."""

from __future__ import annotations

import base64
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path


import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.support import query_of

try:
    from sandbox import create_app
except ModuleNotFoundError:  # running without the project root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from sandbox import create_app

FHIR_BASE = "http://localhost:8800/fhir"
REDIRECT_URI = "http://127.0.0.1:8000/callback"
PUBLIC_CLIENT = "imaging-app"
CONFIDENTIAL_CLIENT = "imaging-app-confidential"
CONFIDENTIAL_SECRET = "sandbox-secret"
EHR_SCOPE = "launch openid fhirUser patient/ImagingStudy.rs patient/Patient.rs patient/Endpoint.r"


@dataclass
class Pkce:
    code_verifier: str
    code_challenge: str


def new_pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)
    return Pkce(verifier, create_s256_code_challenge(verifier))


class SmartFlow:
    """Drives launches, authorize and token calls against the sandbox test client."""

    fhir_base = FHIR_BASE
    redirect_uri = REDIRECT_URI
    public_client = PUBLIC_CLIENT
    confidential_client = CONFIDENTIAL_CLIENT
    confidential_secret = CONFIDENTIAL_SECRET
    ehr_scope = EHR_SCOPE
    new_pkce = staticmethod(new_pkce)
    query_of = staticmethod(query_of)

    def __init__(self, client):
        self.client = client

    def create_launch(self, patient="pt-1001", **body):
        response = self.client.post("/ehr/api/launches", json={"patient": patient, **body})
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    def authorize_params(self, pkce: Pkce, scope=EHR_SCOPE, launch=None, client_id=PUBLIC_CLIENT, **overrides):
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": "state-" + secrets.token_hex(4),
            "aud": FHIR_BASE,
            "code_challenge": pkce.code_challenge,
            "code_challenge_method": "S256",
        }
        if launch is not None:
            params["launch"] = launch
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def authorize(self, params):
        return self.client.get("/oauth2/authorize", query_string=params)

    def code_from(self, response, state=None) -> str:
        assert response.status_code == 302, response.get_data(as_text=True)
        query = query_of(response.headers["Location"])
        assert "error" not in query, query
        if state is not None:
            assert query["state"] == state
        return query["code"]

    def token(self, data, basic=None):
        headers = {}
        if basic:
            raw = f"{basic[0]}:{basic[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        return self.client.post("/oauth2/token", data=data, headers=headers)

    def exchange(self, code, pkce: Pkce, client_id=PUBLIC_CLIENT, basic=None):
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                "code_verifier": pkce.code_verifier}
        if basic is None:
            data["client_id"] = client_id
        return self.token(data, basic=basic)

    def ehr_token(self, patient="pt-1001", scope=EHR_SCOPE, **launch_body) -> dict:
        """Full EHR launch; return the token response JSON."""
        launch = self.create_launch(patient, **launch_body)
        pkce = new_pkce()
        params = self.authorize_params(pkce, scope=scope, launch=launch["launch"])
        code = self.code_from(self.authorize(params), params["state"])
        response = self.exchange(code, pkce)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def fhir(self, path, token=None, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.get("/fhir/" + path, headers=headers, **kwargs)


@pytest.fixture
def sandbox_app():
    return create_app({"TESTING": True})


@pytest.fixture
def sandbox_client(sandbox_app):
    return sandbox_app.test_client()


@pytest.fixture
def smart(sandbox_client):
    return SmartFlow(sandbox_client)
