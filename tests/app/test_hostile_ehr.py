"""The app against a hostile EHR on loopback (real sockets): each finding of the penetration test, now refused.

``hostile`` is a raw-socket server (:class:`tests.loopback.LoopbackServer`)
whose answers each test scripts; ``collector`` stands for the attacker's
other host and must never receive a byte. The honest EHR, where one is
needed, is the live sandbox.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from app import ConfigError, create_app
from sandbox import create_app as create_sandbox
from tests.loopback import LoopbackServer, json_response, response_bytes
from tests.support import live_server

APP_ORIGIN = "http://127.0.0.1:8000"
PATIENT = "pt-7"
UID = "2.25.77"


def _study(study_id: str = "is-7", **extra) -> dict:
    return {"resourceType": "ImagingStudy", "id": study_id, "status": "available",
            "subject": {"reference": f"Patient/{PATIENT}"}, "started": "2024-01-01T10:00:00Z",
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{UID}"}], **extra}


def _bundle(resources: list[dict], next_url: str | None = None) -> dict:
    bundle = {"resourceType": "Bundle", "type": "searchset",
              "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


class HostileEhr:
    """A scripted EHR: ``routes`` maps a path (no query) to ``(request) -> answer``.

    An answer is the bytes to send, or a function ``(socket) -> None`` that writes them itself (trickles).
    """

    def __init__(self):
        self.routes: dict = {}
        self.server = LoopbackServer(self._handle)
        self.origin = self.server.origin
        self.iss = f"{self.origin}/fhir"
        self.well_known(issuer=self.origin)
        self.routes["/token"] = lambda r: json_response({"access_token": "tok-hostile", "token_type": "Bearer",
                                                         "expires_in": 3600, "patient": PATIENT,
                                                         "scope": "launch/patient patient/ImagingStudy.rs"})
        self.routes[f"/fhir/Patient/{PATIENT}"] = lambda r: json_response(
            {"resourceType": "Patient", "id": PATIENT}, content_type="application/fhir+json")
        self.routes["/fhir/ImagingStudy"] = lambda r: json_response(_bundle([_study()]),
                                                                    content_type="application/fhir+json")

    def well_known(self, **extra) -> None:
        body = {"authorization_endpoint": f"{self.origin}/authorize", "token_endpoint": f"{self.origin}/token",
                "capabilities": ["launch-standalone", "permission-v2"], **extra}
        self.routes["/fhir/.well-known/smart-configuration"] = lambda r: json_response({k: v for k, v in body.items()
                                                                                        if v is not None})

    def _handle(self, request, conn):
        route = self.routes.get(request.target.split("?", 1)[0])
        if route is None:
            conn.sendall(response_bytes(404, b"{}", {"Content-Type": "application/json"}))
            return None
        answer = route(request)
        if isinstance(answer, bytes):  # it closes after each answer, and says so (RFC 9112 §9.6)
            answer = answer.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
        try:
            conn.sendall(answer) if isinstance(answer, bytes) else answer(conn)
        except OSError:
            pass
        return False  # one request per connection keeps the scripts simple

    def hits(self, path: str) -> int:
        """How many requests reached ``path``."""
        return sum(1 for r in self.server.requests if r.target.split("?", 1)[0] == path)

    def close(self):
        self.server.close()


@pytest.fixture
def hostile():
    ehr = HostileEhr()
    yield ehr
    ehr.close()


@pytest.fixture
def collector():
    """The attacker's other host: counts connections; must stay at 0."""
    server = LoopbackServer(lambda request, conn: conn.sendall(response_bytes(200, b"{}")) or False)
    yield server
    server.close()


def _registration(*ehrs: dict, fhir: dict | None = None) -> dict:
    return {"app": {"launch_uri": f"{APP_ORIGIN}/launch", "redirect_uri": f"{APP_ORIGIN}/callback"},
            "ehrs": list(ehrs),
            "viewer": {"base_url": "https://viewer.example.org/IHEInvokeImageDisplay"},
            "fhir": {"connect_timeout": 1, "read_timeout": 2, "deadline_seconds": 3, **(fhir or {})}}


def _app(tmp_path, *ehrs: dict, fhir: dict | None = None):
    return create_app(_registration(*ehrs, fhir=fhir), secret_key="hostile-tests-" + "k" * 32,
                      store_path=tmp_path / "launches.sqlite3")


def _standalone_to_callback(client, iss: str) -> tuple[dict, str]:
    """Start a standalone launch at ``iss``; ``(authorize query, state)``."""
    started = client.get("/launch", query_string={"iss": iss})
    assert started.status_code == 303, started.get_data(as_text=True)
    query = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["Location"]).query).items()}
    return query, query["state"]


def _launch_list(client, ehr: HostileEhr):
    """Standalone launch at the hostile EHR, its callback answered with a code, then the list page."""
    _, state = _standalone_to_callback(client, ehr.iss)
    callback = client.get("/callback", query_string={"code": "c-1", "state": state, "iss": ehr.origin})
    if callback.status_code != 303:
        return callback
    return client.get(callback.headers["Location"])


# -- mix-up (RFC 9700 §4.4, RFC 9207) ---------------------------------------------------------------
@pytest.mark.parametrize("b_names_an_issuer", [True, False])
def test_mix_up_a_code_from_another_ehr_is_never_redeemed(tmp_path, hostile, b_names_an_issuer):
    """B's authorize sends the browser to A with the app's state; A's code comes back: no token request anywhere."""
    if not b_names_an_issuer:
        hostile.well_known(issuer=None)
    with live_server(lambda port: create_sandbox({"PUBLIC_BASE_URL": f"http://localhost:{port}",
                                                  "APP_ORIGIN": APP_ORIGIN})) as port:
        a_base = f"http://localhost:{port}"
        app = _app(tmp_path, {"name": "A", "iss": f"{a_base}/fhir", "client_id": "imaging-app"},
                   {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"})
        client = app.test_client()
        query, state = _standalone_to_callback(client, hostile.iss)
        query["aud"] = f"{a_base}/fhir"  # what B does: the app's own state and code_challenge, sent to A
        picker = requests.get(f"{a_base}/oauth2/authorize?{urlencode(query)}", timeout=10)
        assert picker.status_code == 200
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', picker.text))
        answer = requests.post(f"{a_base}/oauth2/authorize", data={**fields, "patient": "pt-1002"},
                               allow_redirects=False, timeout=10)
        location = answer.headers["Location"]
        assert parse_qs(urlsplit(location).query)["iss"] == [a_base]  # A names itself (RFC 9207)
        callback = client.get(location[len(APP_ORIGIN):])
        page = callback.get_data(as_text=True)
        assert callback.status_code == 400
        assert "Could not verify this launch, please relaunch" in page
        assert "names another authorization server" in page
        assert hostile.hits("/token") == 0  # neither A's code nor the code_verifier went to B
        assert app.extensions["imaging_app"].store.purge_expired(now=time.time() + 10 ** 9) == 0  # launch discarded


def test_mix_up_a_callback_on_another_registrations_redirect_uri_is_refused(tmp_path, hostile, collector):
    other = {"name": "Other", "iss": f"{collector.origin}/fhir", "client_id": "x",
             "redirect_uri": f"{APP_ORIGIN}/callback/other"}
    app = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app",
                          "redirect_uri": f"{APP_ORIGIN}/callback/b"}, other)
    client = app.test_client()
    query, state = _standalone_to_callback(client, hostile.iss)
    assert query["redirect_uri"] == f"{APP_ORIGIN}/callback/b"
    response = client.get("/callback/other", query_string={"code": "c-1", "state": state})
    assert response.status_code == 400
    assert "came back to another EHR&#39;s address of this app" in response.get_data(as_text=True)
    assert hostile.hits("/token") == 0 and collector.connections == 0


def test_a_server_that_promises_iss_and_omits_it_is_refused(tmp_path, hostile):
    hostile.well_known(issuer=hostile.origin, authorization_response_iss_parameter_supported=True)
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    _, state = _standalone_to_callback(client, hostile.iss)
    response = client.get("/callback", query_string={"code": "c-1", "state": state})
    assert response.status_code == 400
    assert "does not name its authorization server" in response.get_data(as_text=True)
    assert hostile.hits("/token") == 0


def test_the_right_iss_completes_the_launch(tmp_path, hostile):
    hostile.well_known(issuer=hostile.origin, authorization_response_iss_parameter_supported=True)
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    page = _launch_list(client, hostile)
    assert page.status_code == 200
    assert re.findall(r'data-study-id="([^"]+)"', page.get_data(as_text=True)) == ["is-7"]
    assert hostile.hits("/token") == 1


# -- the bearer token never leaves the origin of iss ------------------------------------------------
NEXT_LINKS = [
    "http://127.0.0.1:{hostile}\\@127.0.0.1:{collector}/fhir/ImagingStudy?page=2",
    "http://127.0.0.1:{hostile}@127.0.0.1:{collector}/fhir/ImagingStudy?page=2",
    "http://127.0.0.1:{collector}#@127.0.0.1:{hostile}/fhir/ImagingStudy",
    "http://127.0.0.1:{collector}/fhir/ImagingStudy?page=2",
    "//127.0.0.1:{collector}/fhir/ImagingStudy?page=2",
    "http://127.0.0.1:{collector}\\t/fhir",
    "http://127.0.0.1:{collector}\r\n/fhir",
    "HTTP://127.0.0.1:{collector}/fhir/ImagingStudy",
    "http://0x7f.0.0.1:{collector}/fhir/ImagingStudy",
    "http://127.1:{collector}/fhir/ImagingStudy",
    "http://127.0.0.1.:{collector}/fhir/ImagingStudy",
    "http://%31%32%37.0.0.1:{collector}/fhir/ImagingStudy",
    "http://user:pass@127.0.0.1:{collector}/fhir/ImagingStudy",
    "http:\\\\127.0.0.1:{collector}/fhir/ImagingStudy",
]


@pytest.mark.parametrize("template", NEXT_LINKS)
def test_a_next_link_never_takes_the_token_elsewhere(tmp_path, hostile, collector, template):
    link = template.format(hostile=hostile.server.port, collector=collector.port)
    hostile.routes["/fhir/ImagingStudy"] = lambda r: json_response(_bundle([_study()], next_url=link),
                                                                    content_type="application/fhir+json")
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    response = _launch_list(client, hostile)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.findall(r'data-study-id="([^"]+)"', page) == ["is-7"]
    assert collector.connections == 0
    assert "List incomplete" in page or hostile.hits("/fhir/ImagingStudy") >= 2


# -- redirects with secrets ---------------------------------------------------------------------------
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_token_endpoint_redirecting_is_refused_and_nothing_is_re_posted(tmp_path, hostile, collector, status):
    hostile.routes["/token"] = lambda r: response_bytes(status, b"", {"Location": collector.url("/token")})
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    response = _launch_list(client, hostile)
    page = response.get_data(as_text=True)
    assert response.status_code == 502
    assert f"The token endpoint answered HTTP {status} (a redirect)" in page
    assert collector.connections == 0
    assert hostile.hits("/token") == 1


def test_discovery_redirecting_to_another_host_is_not_followed(tmp_path, hostile, collector):
    hostile.routes["/fhir/.well-known/smart-configuration"] = lambda r: response_bytes(
        302, b"", {"Location": collector.url("/fhir/.well-known/smart-configuration")})
    hostile.routes["/fhir/metadata"] = lambda r: json_response({"resourceType": "CapabilityStatement"})
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    response = client.get("/launch", query_string={"iss": hostile.iss})
    assert response.status_code == 502
    assert "SMART discovery failed for this server" in response.get_data(as_text=True)
    assert collector.connections == 0


def test_a_fhir_redirect_is_not_followed_with_the_token(tmp_path, hostile, collector):
    hostile.routes["/fhir/ImagingStudy"] = lambda r: response_bytes(307, b"", {"Location": collector.url("/x")})
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    response = _launch_list(client, hostile)
    assert response.status_code == 502
    assert "HTTP 307 (a redirect)" in response.get_data(as_text=True)
    assert collector.connections == 0


# -- time and size -----------------------------------------------------------------------------------
def test_a_trickling_search_is_cut_at_the_deadline(tmp_path, hostile):
    body = json.dumps(_bundle([_study()])).encode()

    def trickle(conn):
        conn.sendall(response_bytes(200, b"", {"Content-Type": "application/fhir+json",
                                               "Content-Length": str(len(body))}))
        for byte in body:
            time.sleep(0.25)
            conn.sendall(bytes([byte]))

    hostile.routes["/fhir/ImagingStudy"] = lambda r: trickle
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"},
                  fhir={"deadline_seconds": 1.5, "read_timeout": 2}).test_client()
    started = time.monotonic()
    response = _launch_list(client, hostile)
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert "did not answer in time" in response.get_data(as_text=True)
    assert elapsed < 4.0  # the deadline (1.5 s), not the body's 50+ s


def test_an_oversized_bundle_is_refused_without_reading_it_all(tmp_path, hostile):
    big = json.dumps(_bundle([_study(f"is-{i}", description="x" * 1000) for i in range(1500)])).encode()
    assert len(big) > 1024 * 1024
    hostile.routes["/fhir/ImagingStudy"] = lambda r: response_bytes(200, big, {"Content-Type": "application/fhir+json"})
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"},
                  fhir={"max_page_bytes": 1024 * 1024}).test_client()
    response = _launch_list(client, hostile)
    assert response.status_code == 502
    assert "The EHR sent more than the app accepts" in response.get_data(as_text=True)
    assert "1024 KiB" in response.get_data(as_text=True)


def test_json_nested_100000_deep_is_a_page_not_a_500(tmp_path, hostile):
    deep = b'{"resourceType": "Bundle", "entry": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    hostile.routes["/fhir/ImagingStudy"] = lambda r: response_bytes(200, deep, {"Content-Type": "application/fhir+json"})
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    response = _launch_list(client, hostile)
    assert response.status_code == 502
    assert "was not valid JSON" in response.get_data(as_text=True)


@pytest.mark.parametrize("access_token", ["tok\r\nX-Injected: 1", "tok en", "tök"])
def test_a_token_that_could_split_headers_is_refused_before_any_fhir_request(tmp_path, hostile, access_token):
    hostile.routes["/token"] = lambda r: json_response({"access_token": access_token, "token_type": "Bearer",
                                                         "expires_in": 3600, "patient": PATIENT})
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    response = _launch_list(client, hostile)
    page = response.get_data(as_text=True)
    assert response.status_code == 502
    assert "the access_token contains characters a bearer token cannot have" in page
    assert hostile.hits("/fhir/ImagingStudy") == 0 and hostile.hits(f"/fhir/Patient/{PATIENT}") == 0


@pytest.mark.parametrize("expires_in", ["Infinity", "-Infinity", "NaN", -1, 1e308])
def test_odd_expires_in_is_an_unknown_lifetime(tmp_path, hostile, expires_in):
    raw = json.dumps({"access_token": "tok-ok", "token_type": "Bearer", "patient": PATIENT,
                      "scope": "launch/patient patient/ImagingStudy.rs"})[:-1] + f', "expires_in": {expires_in}}}'
    hostile.routes["/token"] = lambda r: json_response(None, raw=raw.encode())
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    response = _launch_list(client, hostile)
    assert response.status_code in (200, 502)  # strict JSON refuses NaN/Infinity (502); numbers are tolerated
    assert "Something went wrong" not in response.get_data(as_text=True)


# -- host header, pending launches, sessions ---------------------------------------------------------
def _raw_get(port: int, path: str, host: str) -> bytes:
    """One HTTP/1.1 GET with exactly this Host header, as a hostile client sends it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("host", ["evil.example", "bad..label", "xn--", "xn--zz", "[::1", "a\u00e9.example",
                                  "127.0.0.1:8000@evil.example", "127.0.0.1 evil"])
def test_an_untrusted_host_gets_400_and_never_a_location(tmp_path, hostile, host, caplog):
    app = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"})
    with live_server(lambda port: app) as port:
        for path in ("/", "/l/abc", "/callback?code=c-secret&state=s-secret", f"/launch?iss={hostile.iss}"):
            answer = _raw_get(port, path, host)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400"), (path, host, head)
            assert b"\r\nLocation:" not in head and b"not one the imaging app answers to" in body
        assert _raw_get(port, "/healthz", host).startswith(b"HTTP/1.1 200")  # load balancers probe by address
    assert hostile.server.connections == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # refused, not crashed


def test_pending_launches_are_bounded_per_browser(tmp_path, hostile):
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    for _ in range(20):
        assert client.get("/launch", query_string={"iss": hostile.iss}).status_code == 303
    refused = client.get("/launch", query_string={"iss": hostile.iss})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 601
    assert "Too many sign-ins in progress" in refused.get_data(as_text=True)


def test_pending_launches_are_bounded_in_total(tmp_path, hostile):
    app = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"})
    app.extensions["imaging_app"].store.max_pending_total = 5
    statuses = [app.test_client().get("/launch", query_string={"iss": hostile.iss}).status_code for _ in range(7)]
    assert statuses == [303] * 5 + [429] * 2


def test_a_planted_browser_binding_opens_nothing_after_the_sign_in(tmp_path, hostile):
    app = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"})
    attacker = app.test_client()
    attacker.get("/launch", query_string={"iss": hostile.iss})  # the attacker's own cookie ...
    planted = attacker.get_cookie("imaging_app_session", domain="127.0.0.1").value
    victim = app.test_client()
    victim.set_cookie("imaging_app_session", planted, domain="127.0.0.1")  # ... planted in the victim's browser
    page = _launch_list(victim, hostile)
    assert page.status_code == 200
    list_path = urlsplit(page.request.url).path
    assert victim.get_cookie("imaging_app_session", domain="127.0.0.1").value != planted  # rotated
    assert attacker.get(list_path).status_code == 404
    assert victim.get(list_path).status_code == 200


def test_framing_is_allowed_only_for_the_launchs_own_ehr(tmp_path, hostile, collector):
    app = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app",
                          "frame_ancestors": ["https://ehr-b.example.org"]},
               {"name": "C", "iss": f"{collector.origin}/fhir", "client_id": "x",
                "frame_ancestors": ["https://ehr-c.example.org"]})
    client = app.test_client()
    page = _launch_list(client, hostile)
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://ehr-b.example.org;" in csp and "ehr-c" not in csp
    start = client.get("/").headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://ehr-b.example.org https://ehr-c.example.org;" in start


# -- secrets and the store ---------------------------------------------------------------------------
def test_a_short_secret_key_stops_the_app(tmp_path, monkeypatch, hostile):
    monkeypatch.setenv("SECRET_KEY", "too-short")
    with pytest.raises(ConfigError, match="SECRET_KEY: at least 32 bytes"):
        create_app(_registration({"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}),
                   store_path=tmp_path / "s.sqlite3")


def test_store_files_are_private(tmp_path, hostile):
    client = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"}).test_client()
    assert _launch_list(client, hostile).status_code == 200
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.glob("launches.sqlite3*")}
    assert set(modes) >= {"launches.sqlite3", "launches.sqlite3-wal", "launches.sqlite3-shm"}
    assert set(modes.values()) == {0o600}


def test_a_corrupt_store_stops_start_up_naming_the_file(tmp_path, hostile):
    store = tmp_path / "launches.sqlite3"
    store.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError) as raised:
        _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"})
    assert f"launch store {store}: not a usable SQLite database" in str(raised.value)
    assert "Move the file aside" in str(raised.value)


def test_a_store_corrupted_at_run_time_gives_503(tmp_path, hostile):
    app = _app(tmp_path, {"name": "B", "iss": hostile.iss, "client_id": "imaging-app"})
    for companion in tmp_path.glob("launches.sqlite3-*"):
        companion.unlink()
    (tmp_path / "launches.sqlite3").write_bytes(b"garbage" * 1000)
    with live_server(lambda port: app) as port:  # each request on a new thread: a new connection to the file
        response = requests.get(f"http://127.0.0.1:{port}/launch", params={"iss": hostile.iss},
                                headers={"Host": "127.0.0.1:8000"}, allow_redirects=False, timeout=10)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert "cannot reach its launch store" in response.text


def test_a_slow_ehr_takes_at_most_its_slots_and_a_healthy_ehr_is_served_meanwhile(tmp_path, hostile):
    """Bulkhead: 3 loads hold the slow EHR's 2 slots and the 3rd waits, then gets 503; another EHR answers at once."""
    import threading
    healthy = HostileEhr()
    try:
        def slow(conn):
            time.sleep(1.5)  # within read_timeout (2 s)
            conn.sendall(json_response(_bundle([_study()]), content_type="application/fhir+json"))

        hostile.routes["/fhir/ImagingStudy"] = lambda r: slow
        app = _app(tmp_path, {"name": "Slow", "iss": hostile.iss, "client_id": "imaging-app"},
                   {"name": "Healthy", "iss": healthy.iss, "client_id": "imaging-app"},
                   fhir={"max_concurrent_lists_per_ehr": 2, "busy_wait_seconds": 0.5, "deadline_seconds": 5})
        statuses: list[int] = []

        def load():
            statuses.append(_launch_list(app.test_client(), hostile).status_code)

        threads = [threading.Thread(target=load) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(0.7)  # two loads hold the slow EHR's slots; the third has given up (0.5 s wait)
        started = time.monotonic()
        assert _launch_list(app.test_client(), healthy).status_code == 200
        assert time.monotonic() - started < 1.5  # not behind the slow EHR's queue
        for thread in threads:
            thread.join(timeout=10)
        assert sorted(statuses) == [200, 200, 503]
    finally:
        healthy.close()
