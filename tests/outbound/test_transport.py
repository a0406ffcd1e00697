"""The guarded client against real loopback sockets: allowlist, redirects, deadline, caps, headers, errors."""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib

import pytest
from authlib.integrations.requests_client import OAuth2Auth

from app.outbound import (ExchangePolicy, InvalidJson, JsonTooDeep, MalformedResponse, OutboundClient,
                          RedirectRefused, RefusedTarget, ResponseTooLarge, UnexpectedContentType, UnsafeHeader,
                          UpstreamTimeout, UpstreamUnreachable)
from app.outbound.policy import DEFAULT_LIMITS, KiB, MiB

from tests.loopback import gzipped, json_response, reply, response_bytes, trickle


def policy(*servers, kind="fhir", max_bytes=64 * KiB, deadline=5.0, follow=False):
    return ExchangePolicy(kind=kind, allowed_origins=frozenset(s.origin for s in servers), max_bytes=max_bytes,
                          deadline_seconds=deadline, follow_same_origin_redirects=follow)


def test_json_answer_and_keep_alive_across_exchanges_and_kinds(client, make_server):
    server = make_server(reply(json_response({"resourceType": "Patient", "id": "p1"},
                                             content_type="application/fhir+json; charset=utf-8")))
    first = client.get(server.url("/Patient/p1"), policy=client.policy("fhir", server.origin))
    second = client.get(server.url("/metadata"), policy=client.policy("discovery", server.origin))
    assert first.status == 200 and first.json_object() == {"resourceType": "Patient", "id": "p1"}
    assert first.headers["content-type"] == first.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert second.kind == "discovery"
    assert [r.target for r in server.requests] == ["/Patient/p1", "/metadata"]
    assert server.connections == 1                      # one pooled connection, reused
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_pool_size_is_configurable_and_defaults_live_in_one_place():
    small = OutboundClient(pool_size=2, pool_origins=3)
    assert small.adapter._pool_maxsize == 2 and small.adapter._pool_connections == 3
    assert DEFAULT_LIMITS["discovery"].max_bytes == 256 * KiB and DEFAULT_LIMITS["token"].max_bytes == 64 * KiB
    assert DEFAULT_LIMITS["fhir"].max_bytes == 8 * MiB and DEFAULT_LIMITS["binary"].max_bytes == 2 * MiB
    tuned = OutboundClient(limits={"fhir": DEFAULT_LIMITS["binary"]})
    assert tuned.policy("fhir", "https://ehr.example.org").max_bytes == 2 * MiB
    assert tuned.policy("fhir", "https://ehr.example.org", max_bytes=10).max_bytes == 10


def test_off_allowlist_origin_is_refused_with_zero_bytes_sent(client, make_server):
    allowed = make_server(reply(json_response({})))
    other = make_server(reply(json_response({})))
    for url in (other.url("/x"), f"http://127.0.0.1:{allowed.port}@127.0.0.1:{other.port}/",
                f"http://127.0.0.1:{allowed.port}\\@127.0.0.1:{other.port}/"):
        with pytest.raises(RefusedTarget):
            client.get(url, policy=policy(allowed), headers={"Authorization": "Bearer t0ken"})
    with pytest.raises(RefusedTarget) as caught:
        client.get(other.url("/Patient/123"), policy=policy(allowed))
    assert caught.value.reason == "origin_not_allowed" and caught.value.origin == other.origin
    assert "123" not in str(caught.value)
    assert other.connections == 0 and allowed.connections == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_refused_and_not_followed(client, make_server, status):
    elsewhere = make_server(reply(json_response({})))
    server = make_server(reply(response_bytes(status, headers={"Location": elsewhere.url("/steal")})))
    with pytest.raises(RedirectRefused) as caught:
        client.get(server.url("/start"), policy=policy(server, elsewhere, follow=True))
    assert (caught.value.status, caught.value.same_origin) == (status, False)
    assert len(server.requests) == 1 and elsewhere.connections == 0


def test_same_origin_redirect_followed_only_when_opted_in_and_without_credentials(client, make_server):
    def handler(request, conn):
        if request.target == "/start":
            conn.sendall(response_bytes(302, headers={"Location": "/final"}))
        else:
            conn.sendall(json_response({"where": request.target}))
    server = make_server(handler)
    followed = client.get(server.url("/start"), policy=policy(server, follow=True))
    assert followed.json() == {"where": "/final"} and followed.url == server.url("/final")
    assert [r.target for r in server.requests] == ["/start", "/final"]
    with pytest.raises(RedirectRefused) as caught:
        client.get(server.url("/start"), policy=policy(server, follow=False))
    assert (caught.value.status, caught.value.same_origin) == (302, True)
    with pytest.raises(RedirectRefused):
        client.get(server.url("/start"), policy=policy(server, follow=True), headers={"Authorization": "Bearer abc"})
    with pytest.raises(RedirectRefused):
        client.post(server.url("/start"), policy=policy(server, follow=True), data={"code": "c"})
    assert [r.target for r in server.requests] == ["/start", "/final", "/start", "/start", "/start"]


def test_trickling_body_is_cut_at_the_deadline(client, make_server):
    head = response_bytes(200, headers={"Content-Type": "application/json", "Content-Length": "25"})
    server = make_server(trickle(head, b"[" + b"1," * 12 + b"]", every=0.4))  # about 10 s in all
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        client.get(server.url("/slow"), policy=policy(server, deadline=1.0))
    elapsed = time.monotonic() - started
    assert caught.value.phase == "deadline" and caught.value.status == 200
    assert 0.95 <= elapsed < 1.3


def test_trickling_headers_are_cut_at_the_deadline(client, make_server):
    headers = b"Content-Type: application/json\r\n" + b"X-Slow: " + b"y" * 30 + b"\r\n\r\n"
    server = make_server(trickle(b"HTTP/1.1 200 OK\r\n", headers, every=0.3))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        client.get(server.url("/slow"), policy=policy(server, deadline=1.0))
    elapsed = time.monotonic() - started
    assert caught.value.phase == "deadline"
    assert 0.95 <= elapsed < 1.3


def test_read_timeout(make_server):
    server = make_server(lambda request, conn: time.sleep(2))
    quick = OutboundClient(connect_timeout=1.0, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        quick.get(server.url("/"), policy=policy(server, deadline=5.0))
    assert caught.value.phase == "read" and time.monotonic() - started < 1.0
    assert len(server.requests) == 1


def test_connection_refused_is_unreachable(client):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(UpstreamUnreachable) as caught:
        client.get(f"http://127.0.0.1:{port}/", policy=client.policy("fhir", f"http://127.0.0.1:{port}"))
    assert caught.value.reason == "connection_refused" and caught.value.origin == f"http://127.0.0.1:{port}"


def test_content_length_over_the_cap_is_refused_before_reading(client, make_server):
    head = response_bytes(200, headers={"Content-Type": "application/json", "Content-Length": str(10 * MiB)})
    server = make_server(lambda request, conn: (conn.sendall(head), time.sleep(3)))  # no body ever comes
    started = time.monotonic()
    with pytest.raises(ResponseTooLarge) as caught:
        client.get(server.url("/"), policy=policy(server, max_bytes=1024))
    assert (caught.value.limit_bytes, caught.value.declared_bytes) == (1024, 10 * MiB)
    assert time.monotonic() - started < 1.5  # the body never comes: reading it would time out instead


def test_chunked_body_over_the_cap_is_refused(client, make_server):
    chunk = b"x" * 256
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8)) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = make_server(reply(head + body))
    with pytest.raises(ResponseTooLarge) as caught:
        client.get(server.url("/"), policy=policy(server, max_bytes=1024))
    assert (caught.value.limit_bytes, caught.value.declared_bytes) == (1024, None)
    small = make_server(reply(head + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"))
    assert client.get(small.url("/"), policy=policy(small, max_bytes=1024)).content == chunk * 4


def test_gzip_bomb_is_refused_on_decoded_bytes(client, make_server):
    bomb = gzipped(b"0" * (16 * MiB))
    assert len(bomb) < 1 * MiB  # small on the wire: only the decoded count can catch it
    server = make_server(reply(response_bytes(200, bomb, {"Content-Type": "application/json",
                                                          "Content-Encoding": "gzip"})))
    started = time.monotonic()
    with pytest.raises(ResponseTooLarge) as caught:
        client.get(server.url("/"), policy=policy(server, max_bytes=1 * MiB))
    assert caught.value.limit_bytes == 1 * MiB and caught.value.declared_bytes is None
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("encoding,encode", [
    ("gzip", gzipped),
    ("deflate", zlib.compress),
    ("deflate", lambda d: zlib.compress(d)[2:-4]),  # raw deflate, as some servers send
])
def test_compressed_bodies_are_decoded(client, make_server, encoding, encode):
    payload = json.dumps({"resourceType": "Bundle", "entry": [{"n": i} for i in range(500)]}).encode()
    server = make_server(reply(response_bytes(200, encode(payload), {"Content-Type": "application/json",
                                                                     "Content-Encoding": encoding})))
    assert client.get(server.url("/"), policy=policy(server)).content == payload


def test_unknown_content_encoding_is_refused(client, make_server):
    server = make_server(reply(response_bytes(200, b"??", {"Content-Encoding": "br"})))
    with pytest.raises(MalformedResponse) as caught:
        client.get(server.url("/"), policy=policy(server))
    assert caught.value.reason == "content_encoding"


def _json_server(make_server, raw: bytes, content_type="application/json"):
    return make_server(reply(response_bytes(200, raw, {"Content-Type": content_type})))


def test_deep_json_is_refused_with_json_too_deep(client, make_server):
    server = _json_server(make_server, b"[" * 100_000 + b"]" * 100_000)
    answer = client.get(server.url("/"), policy=policy(server, max_bytes=1 * MiB))
    with pytest.raises(JsonTooDeep) as caught:
        answer.json()
    assert caught.value.limit == 64 and caught.value.status == 200
    assert answer.__class__(**{**answer.__dict__, "content": b"[" * 64 + b"]" * 64}).json() is not None
    with pytest.raises(JsonTooDeep):
        answer.__class__(**{**answer.__dict__, "content": b'{"a":' * 65 + b"1" + b"}" * 65}).json()


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b'[-Infinity]', b'[1e400]'])
def test_non_finite_numbers_are_refused(client, make_server, raw):
    server = _json_server(make_server, raw)
    with pytest.raises(InvalidJson) as caught:
        client.get(server.url("/"), policy=policy(server)).json()
    assert caught.value.reason == "non_finite_number"


def test_json_object_required_and_duplicates_refused(client, make_server):
    array = _json_server(make_server, b"[1, 2]")
    assert client.get(array.url("/"), policy=policy(array)).json() == [1, 2]
    with pytest.raises(InvalidJson) as caught:
        client.get(array.url("/"), policy=policy(array)).json_object()
    assert caught.value.reason == "not_an_object"
    dup = _json_server(make_server, b'{"access_token": "a", "access_token": "b"}')
    with pytest.raises(InvalidJson) as caught:
        client.get(dup.url("/"), policy=policy(dup)).json_object()
    assert caught.value.reason == "duplicate_key"


@pytest.mark.parametrize("content_type,media", [("text/html; charset=utf-8", "text/html"), (None, None),
                                                ("application/jsonp", "application/jsonp")])
def test_wrong_content_type_is_refused(client, make_server, content_type, media):
    headers = {"Content-Type": content_type} if content_type else {}
    server = make_server(reply(response_bytes(200, b"{}", headers)))
    with pytest.raises(UnexpectedContentType) as caught:
        client.get(server.url("/"), policy=policy(server)).json()
    assert caught.value.media_type == media


@pytest.mark.parametrize("headers,auth,reason", [
    ({"Authorization": "Bearer abc\r\nX-Injected: 1"}, None, "crlf_or_nul"),
    ({"X-Note": "a\nb"}, None, "crlf_or_nul"),
    ({"X-Note": "a\x00b"}, None, "crlf_or_nul"),
    ({"X-Note": "a\x01b"}, None, "control_or_non_ascii"),
    (None, OAuth2Auth({"access_token": "abc\r\nX-Injected: 1", "token_type": "Bearer"}), "crlf_or_nul"),
    (None, OAuth2Auth({"access_token": "abc def", "token_type": "Bearer"}), "bearer_not_b64token"),
])
def test_unsafe_header_is_refused_before_connecting(client, make_server, headers, auth, reason):
    server = make_server(reply(json_response({})))
    with pytest.raises(UnsafeHeader) as caught:
        client.get(server.url("/"), policy=policy(server), headers=headers, auth=auth)
    assert caught.value.reason == reason
    assert "abc" not in str(caught.value)
    assert server.connections == 0


def test_concurrent_exchanges_share_the_pool(make_server):
    server = make_server(reply(json_response({"ok": True})))
    shared = OutboundClient(pool_size=2)
    errors = []

    def work():
        try:
            for _ in range(5):
                shared.get(server.url("/"), policy=policy(server)).json_object()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(server.requests) == 10 and server.connections <= 2
