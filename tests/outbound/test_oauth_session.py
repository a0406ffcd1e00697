"""authlib's OAuth2Session through the guard: code exchange, refresh, redirects refused, fhirclient's get."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
from authlib.integrations.requests_client import OAuth2Auth
from fhirclient.server import FHIRServer

from app.outbound import InvalidJson, RedirectRefused, RefusedTarget, UnexpectedContentType

from tests.loopback import json_response, reply, response_bytes

TOKEN = {"access_token": "at-1.abc_DEF~", "token_type": "Bearer", "expires_in": 300, "scope": "launch",
         "patient": "p1", "refresh_token": "rt-1"}


def _oauth(client, server, **kwargs):
    return client.oauth_session(client.policy("token", server.origin), client_id="app", redirect_uri="https://app/cb",
                                token_endpoint_auth_method="none", **kwargs)


def test_fetch_token_through_the_guard(client, make_server):
    server = make_server(reply(json_response(TOKEN)))
    token = _oauth(client, server).fetch_token(server.url("/token"), grant_type="authorization_code",
                                               code="code-1", code_verifier="v" * 43)
    assert token["access_token"] == "at-1.abc_DEF~" and token["patient"] == "p1"
    assert len(server.requests) == 1
    sent = server.requests[0]
    assert sent.method == "POST" and sent.target == "/token"
    form = parse_qs(sent.body.decode())
    assert form["code"] == ["code-1"] and form["code_verifier"] == ["v" * 43] and form["client_id"] == ["app"]
    assert "cookie" not in sent.headers


def test_refresh_through_the_guard_with_client_secret_basic(client, make_server):
    server = make_server(reply(json_response({**TOKEN, "access_token": "at-2"})))
    oauth = client.oauth_session(client.policy("token", server.origin), client_id="app", client_secret="s3cret",
                                 token_endpoint_auth_method="client_secret_basic")
    token = oauth.refresh_token(server.url("/token"), refresh_token="rt-1")
    assert token["access_token"] == "at-2"
    assert server.requests[0].headers["authorization"].startswith("Basic ")
    assert parse_qs(server.requests[0].body.decode())["grant_type"] == ["refresh_token"]


@pytest.mark.parametrize("status", [307, 302])
def test_token_endpoint_redirect_is_not_followed(client, make_server, status):
    thief = make_server(reply(json_response(TOKEN)))
    server = make_server(reply(response_bytes(status, headers={"Location": thief.url("/token")})))
    oauth = client.oauth_session(client.policy("token", server.origin, thief.origin), client_id="app",
                                 token_endpoint_auth_method="none")
    with pytest.raises(RedirectRefused) as caught:
        oauth.fetch_token(server.url("/token"), grant_type="authorization_code", code="code-1",
                          code_verifier="v" * 43)
    assert (caught.value.status, caught.value.same_origin, caught.value.kind) == (status, False, "token")
    assert len(server.requests) == 1
    assert len(thief.requests) == 0 and thief.connections == 0


def test_same_origin_redirect_of_a_token_post_is_refused_even_when_opted_in(client, make_server):
    server = make_server(reply(response_bytes(307, headers={"Location": "/other-token"})))
    oauth = client.oauth_session(client.policy("token", server.origin, follow_same_origin_redirects=True),
                                 client_id="app", token_endpoint_auth_method="none")
    with pytest.raises(RedirectRefused) as caught:
        oauth.fetch_token(server.url("/token"), grant_type="authorization_code", code="c", code_verifier="v" * 43)
    assert (caught.value.status, caught.value.same_origin) == (307, True)
    assert [r.target for r in server.requests] == ["/token"]


def test_token_endpoint_off_policy_is_refused_before_connecting(client, make_server):
    allowed = make_server(reply(json_response(TOKEN)))
    other = make_server(reply(json_response(TOKEN)))
    with pytest.raises(RefusedTarget) as caught:
        _oauth(client, allowed).fetch_token(other.url("/token"), grant_type="authorization_code", code="c",
                                            code_verifier="v" * 43)
    assert caught.value.reason == "origin_not_allowed"
    assert other.connections == 0 and allowed.connections == 0


@pytest.mark.parametrize("raw,content_type,error", [
    (b'{"access_token": NaN, "token_type": "Bearer"}', "application/json", InvalidJson),
    (b"<html>login</html>", "text/html", UnexpectedContentType),
])
def test_hostile_token_response_raises_typed_errors_through_authlib(client, make_server, raw, content_type, error):
    server = make_server(reply(json_response(None, content_type=content_type, raw=raw)))
    with pytest.raises(error):
        _oauth(client, server).fetch_token(server.url("/token"), grant_type="authorization_code", code="c",
                                           code_verifier="v" * 43)


def test_fhirclient_reads_through_the_guarded_get(client, make_server):
    patient = {"resourceType": "Patient", "id": "p1"}
    server = make_server(reply(json_response(patient, content_type="application/fhir+json")))
    fhir = FHIRServer(None, base_uri=server.url("/fhir/"))
    fhir.session = client.requests_session(client.policy("fhir", server.origin),
                                           OAuth2Auth({"access_token": "tok", "token_type": "Bearer"}))
    assert fhir.request_json("Patient/p1") == patient
    assert server.requests[0].target == "/fhir/Patient/p1"
    assert server.requests[0].headers["authorization"] == "Bearer tok"
