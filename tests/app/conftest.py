"""Fixtures for app tests against a mocked EHR (``responses``): the app, its test client, the mock."""

from __future__ import annotations

import pytest
import responses

from app import create_app
from tests.support import ISS, PATIENT, TOKEN, WELL_KNOWN, query_of, registration


class MockedEhr:
    """Drives launches against a ``responses`` mock of https://ehr.example.org."""

    def __init__(self, client, mock: responses.RequestsMock):
        self.client = client
        self.mock = mock

    def well_known(self, body: dict | None = None, iss: str = ISS) -> None:
        self.mock.get(iss.rstrip("/") + "/.well-known/smart-configuration", json=body or WELL_KNOWN)

    def launch(self, iss: str = ISS, launch: str | None = "L-1", headers: dict | None = None):
        query = {"iss": iss, **({"launch": launch} if launch is not None else {})}
        return self.client.get("/launch", query_string=query, headers=headers or {})

    def authorized(self, token_body: dict, iss: str = ISS, launch: str | None = "L-1"):
        """Launch, then answer the callback with ``token_body`` from the token endpoint; returns the callback response."""
        response = self.launch(iss, launch)
        assert response.status_code == 303, response.get_data(as_text=True)
        state = query_of(response.headers["Location"])["state"]
        self.mock.post(TOKEN, json=token_body)
        return self.client.get("/callback", query_string={"code": "c-1", "state": state})

    def calls_to(self, path_part: str, method: str = "GET") -> list:
        return [c for c in self.mock.calls if path_part in c.request.url and c.request.method == method]


def good_token(**extra) -> dict:
    return {"access_token": "tok-good", "token_type": "Bearer", "expires_in": 3600,
            "scope": "launch patient/ImagingStudy.rs patient/Patient.rs", "patient": PATIENT, **extra}


@pytest.fixture
def app(tmp_path):
    return create_app(registration(), secret_key="test-secret", store_path=tmp_path / "launches.sqlite3")


@pytest.fixture
def ehr(app):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield MockedEhr(app.test_client(), mock)


@pytest.fixture
def ehr_with(tmp_path):
    """``ehr_with(**fhir)``: a :class:`MockedEhr` for an app whose registration's ``fhir`` settings are overridden."""
    from contextlib import ExitStack
    with ExitStack() as stack:
        def make(**fhir) -> MockedEhr:
            doc = registration()
            doc["fhir"].update(fhir)
            app = create_app(doc, secret_key="test-secret", store_path=tmp_path / f"s{len(fhir)}.sqlite3")
            mock = stack.enter_context(responses.RequestsMock(assert_all_requests_are_fired=False))
            ehr = MockedEhr(app.test_client(), mock)
            ehr.well_known()
            return ehr
        yield make
