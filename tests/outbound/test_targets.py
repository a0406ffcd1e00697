"""URL checks (app.outbound.target.check_url) and the app.urls helpers built on them."""

from __future__ import annotations

import pytest

from app.outbound import ExchangePolicy, RefusedTarget, check_url
from app.urls import base_dir, iss_key, origin_of, origin_string, same_origin

P, P2 = 8801, 8802

REFUSED = [
    (f"http://127.0.0.1:{P}\\@evil.example/", "backslash"),
    ("https://ehr.example.org\\.evil.example/fhir", "backslash"),
    ("http://evil.example#@127.0.0.1/", "fragment"),
    ("https://ehr.example.org/fhir#a#b", "fragment"),
    ("http://user@127.0.0.1/", "userinfo"),
    ("https://user:secret@ehr.example.org/", "userinfo"),
    (f"http://127.0.0.1:{P}@other.example:{P2}/", "userinfo"),
    (f"http://127.0.0.1:{P}@127.0.0.1:{P2}/", "userinfo"),
    ("http://127.0.0.1%2e/", "host_percent_encoded"),
    ("https://%65hr.example.org/", "host_percent_encoded"),
    ("http://[fe80::1%25eth0]:8000/", "host_percent_encoded"),
    ("https://ehr.example.org/fhir\t", "control_or_whitespace"),
    ("https://ehr.exam\tple.org/", "control_or_whitespace"),
    ("https://ehr.example.org/\r\nHost: evil.example", "control_or_whitespace"),
    ("https://ehr.example.org/a\nb", "control_or_whitespace"),
    (" https://ehr.example.org/", "control_or_whitespace"),
    ("https://ehr.example.org/\x00", "control_or_whitespace"),
    ("https://ehr.example.org./fhir", "host_trailing_dot"),
    ("https://ehr..example.org/", "host_empty_label"),
    ("https://.ehr.example.org/", "host_empty_label"),
    ("http://0x7f.0.0.1/", "host_ambiguous_ipv4"),
    ("http://127.1/", "host_ambiguous_ipv4"),
    ("http://2130706433/", "host_ambiguous_ipv4"),
    ("http://0177.0.0.1/", "host_ambiguous_ipv4"),
    ("ftp://ehr.example.org/", "scheme_not_http"),
    ("javascript:alert(1)", "scheme_not_http"),
    ("file:///etc/passwd", "scheme_not_http"),
    ("//evil.example/", "not_absolute"),
    ("https:/evil.example/", "no_authority"),
    ("http://ehr.example.org/fhir", "insecure_transport"),
    ("https://ehr.example.org:99999/", "port_invalid"),
    ("https://ehr.example.org:/", "port_invalid"),
    ("https://ehr.example.org:443:443/", "host_invalid"),
    ("http://[::1/", "host_invalid"),
    ("https://ehr.exa$mple.org/", "host_invalid"),
    ("https://ehr.example.org/fhir/../admin", "dot_segment"),
    ("https://ehr.example.org/fhir/%2e%2E/admin", "dot_segment"),
    ("https://éhr.example.org/", "non_ascii"),
]


@pytest.mark.parametrize("url,reason", REFUSED, ids=[r for _, r in REFUSED])
def test_ambiguous_urls_are_refused_with_their_reason(url, reason):
    with pytest.raises(RefusedTarget) as caught:
        check_url(url)
    assert caught.value.reason == reason


@pytest.mark.parametrize("url", ["https://ehr.example.org/fhir#a", "http://evil.example#@127.0.0.1/"])
def test_app_urls_helpers_ignore_one_fragment_but_refuse_the_rest(url):
    assert origin_of(url)[1] in ("ehr.example.org", "evil.example")
    with pytest.raises(ValueError):
        origin_of("http://127.0.0.1:1@evil.example/")


def test_accepted_urls_are_normalised():
    target = check_url("HTTPS://EHR.Example.ORG:443/fhir/Patient?name=a|b")
    assert target.origin == ("https", "ehr.example.org", 443)
    assert target.url == "https://ehr.example.org/fhir/Patient?name=a%7Cb"
    assert check_url("HTTP://127.0.0.1:8080/x").origin == ("http", "127.0.0.1", 8080)
    assert check_url("http://localhost/").origin == ("http", "localhost", 80)
    assert check_url("http://[0:0::1]:8000/").url == "http://[::1]:8000/"
    assert check_url("https://ehr.example.org").path == "/"


def test_refusal_never_names_path_or_query():
    with pytest.raises(RefusedTarget) as caught:
        check_url("http://ehr.example.org/Patient/pat-123?name=Smith")
    text = str(caught.value)
    assert caught.value.origin == "http://ehr.example.org"
    assert "pat-123" not in text and "Smith" not in text and "/Patient" not in text


def test_policy_origins_are_normalised_and_default_ports_folded():
    policy = ExchangePolicy(kind="fhir", allowed_origins=frozenset({"https://EHR.example.org:443",
                                                                    ("HTTP", "127.0.0.1", 80)}),
                            max_bytes=1, deadline_seconds=1)
    assert policy.allowed_origins == frozenset({("https", "ehr.example.org", 443), ("http", "127.0.0.1", 80)})
    assert policy.allows(check_url("https://ehr.example.org/fhir").origin)
    assert not policy.allows(check_url("https://ehr.example.org:8443/fhir").origin)
    with pytest.raises(ValueError):
        ExchangePolicy(kind="fhir", allowed_origins=frozenset(), max_bytes=1, deadline_seconds=1)


def test_app_urls_keep_their_semantics():
    assert origin_of("https://EHR.example.org/fhir") == ("https", "ehr.example.org", 443)
    assert origin_of("http://ehr.hospital.internal/fhir") == ("http", "ehr.hospital.internal", 80)
    assert origin_string("https://ehr.example.org:443/fhir") == "https://ehr.example.org"
    assert origin_string("http://127.0.0.1:8800/fhir") == "http://127.0.0.1:8800"
    assert same_origin("https://ehr.example.org/a", "https://EHR.example.org:443/b")
    assert not same_origin("https://ehr.example.org/a", "https://ehr.example.org:8443/a")
    assert not same_origin("https://ehr.example.org\\@evil.example/", "https://ehr.example.org/")
    assert iss_key("https://EHR.example.org:443/FHIR/") == ("https", "ehr.example.org", 443, "/FHIR")
    assert base_dir("https://ehr.example.org/fhir") == "https://ehr.example.org/fhir/"
    for bad in ("https://ehr.example.org/fhir?x=1", "https://ehr.example.org/fhir#f", " https://ehr.example.org/fhir",
                "https://u@ehr.example.org/fhir", "ftp://ehr.example.org/fhir"):
        with pytest.raises(ValueError):
            iss_key(bad)
