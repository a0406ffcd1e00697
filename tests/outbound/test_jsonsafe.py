"""``decode_json`` (orjson with the module's refusals): every refusal by its reason, and no false refusal of
colons, quotes or backslashes inside strings (the duplicate check counts members outside strings)."""

from __future__ import annotations

import pytest

from app.outbound.errors import InvalidJson, JsonTooDeep
from app.outbound.jsonsafe import decode_json, nesting_depth


@pytest.mark.parametrize("raw,reason", [
    (b'{"a": 1, "a": 2}', "duplicate_key"),
    (b'{"outer": [{"b": 1}, {"b": 1, "c": 2, "b": 3}]}', "duplicate_key"),
    (b'{"\\u0061": 1, "a": 2}', "duplicate_key"),  # the same name, escaped once
    (b'{"": 1, "": 2}', "duplicate_key"),
    (b'{"a": NaN}', "non_finite_number"),
    (b'[Infinity]', "non_finite_number"),
    (b'[-Infinity]', "non_finite_number"),
    (b'[1e400]', "non_finite_number"),
    (b'[' + b'7' * 5000 + b']', "number_too_long"),
    (b'{"a": "\xff"}', "not_utf8"),
    ('{"a": "é"}'.encode("utf-16"), "not_utf8"),
    (b'{"a": 1,}', "syntax"),
    (b'{"a": ', "syntax"),
])
def test_each_refusal_has_its_reason(raw, reason):
    with pytest.raises(InvalidJson) as caught:
        decode_json(raw, kind="fhir")
    assert caught.value.reason == reason


@pytest.mark.parametrize("raw,value", [
    (b'{"url": "https://ehr.example.org/fhir/ImagingStudy/1", "uid": "urn:oid:1.2.3"}',
     {"url": "https://ehr.example.org/fhir/ImagingStudy/1", "uid": "urn:oid:1.2.3"}),
    (b'[{"x": ":", "y": "\\":"}, {"x": 1}]', [{"x": ":", "y": '":'}, {"x": 1}]),
    (b'{"a\\\\": 1, "a": "{[:]}"}', {"a\\": 1, "a": "{[:]}"}),
    (b'{"\\"": 1, "\\"\\"": 2}', {'"': 1, '""': 2}),
    (b'{"a": {"a": {"a": 1}}}', {"a": {"a": {"a": 1}}}),  # the same name at different levels
    (b'[18446744073709551615, -1.5e308, 0]', [18446744073709551615, -1.5e308, 0]),
    (b'"just a string"', "just a string"),
])
def test_names_and_strings_with_structure_characters_are_not_refused(raw, value):
    assert decode_json(raw) == value


def test_depth_is_measured_before_decoding_and_counts_only_brackets_outside_strings():
    assert nesting_depth(b'{"a": "[[[[{{{{"}') == 1
    assert decode_json(b"[" * 64 + b"]" * 64) is not None
    with pytest.raises(JsonTooDeep):
        decode_json(b'{"a":' * 65 + b"1" + b"}" * 65)
    with pytest.raises(JsonTooDeep):
        decode_json(b"[" * 100_000 + b"]" * 100_000)


def test_the_collector_is_paused_for_large_bodies_and_restored_as_it_was():
    import gc
    from app.outbound import jsonsafe

    seen = []
    real_loads = jsonsafe.orjson.loads
    jsonsafe.orjson.loads = lambda body: seen.append(gc.isenabled()) or real_loads(body)
    try:
        decode_json(b'{"a": 1}')
        decode_json(b'{"a": "' + b"x" * jsonsafe.GC_PAUSE_BYTES + b'"}')
    finally:
        jsonsafe.orjson.loads = real_loads
    assert seen == [True, False] and gc.isenabled()
    with jsonsafe.paused_gc():
        with jsonsafe.paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    gc.disable()
    try:
        with jsonsafe.paused_gc():
            pass
        assert not gc.isenabled()  # disabled before: left disabled
    finally:
        gc.enable()


def _depth(value) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 0 if children is None else 1 + max((_depth(c) for c in children), default=0)


def _large_document(seed: int) -> list:
    """About 200 KB of JSON whose strings hold quotes, backslashes, brackets and colons (the skeleton is split
    in 64 KB pieces: strings straddle the cuts)."""
    import random

    rng = random.Random(seed)
    words = ['a', ':', '[', '{"x":', '\\"]', '"', '\\', '}:{', ']]]', 'é:[']
    return [{"k": "".join(rng.choice(words) for _ in range(rng.randint(0, 40))),
             "n": [[{"d": rng.random()}]] * rng.randint(0, 2), "t:[": None} for _ in range(2000)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_large_bodies_read_in_pieces_give_the_same_depth_and_members(seed):
    import json

    document = _large_document(seed)
    body = json.dumps(document, ensure_ascii=seed == 3).encode()
    assert len(body) > 3 * 64 * 1024
    assert nesting_depth(body) == _depth(document) == 5
    assert decode_json(body) == document
    # a duplicated name, in both the fast (no backslash in the re-encoding) and the slow count
    plain = json.dumps([{"k": str(i), "n": [i]} for i in range(10_000)]).encode()
    assert decode_json(plain)[-1] == {"k": "9999", "n": [9999]}
    for text in (plain, body):
        spot = text.rindex(b'"k": ')
        with pytest.raises(InvalidJson) as refused:
            decode_json(text[:spot] + b'"n": 1, ' + text[spot:])  # the last object's "n" twice
        assert refused.value.reason == "duplicate_key"


_PAD = b'"' + b"p" * (300 * 1024) + b'"'
_ITEMS = b", ".join([b'{"fullUrl": "https://x/1", "resource": {"a": [1, 2.5, "\\u00e9"]}}'] * 6000)
_CASES = [b'{"a": 1, "a": 2}', b'{"b": 1, "c": 2, "b": 3}', b'{"a": NaN}', b"Infinity", b"1e400", b"7" * 5000,
          b'"\xff"', b'"\\ud800"', b'{"\\ud800": 1}', b'{"a": 1,}', b"{", b"tru", b'"\\u0000"', b"[1, 2]",
          b'{"\xc3\xa9": "\xe2\x82\xac"}', b"-0", b"18446744073709551616", b"null"]


def _large_bodies(case: bytes):
    """``case`` at the places the member-by-member decoding cuts: a top-level value, an array's item, a name."""
    yield b'{"pad": ' + _PAD + b', "x": ' + case + b"}"
    yield b'{"resourceType": "Bundle", "entry": [' + _ITEMS + b", " + case + b'], "total": 1}'
    yield b'{"pad": ' + _PAD + b", " + case[1:-1] + b"}" if case.startswith(b"{") else b"{" + _PAD + b"}"
    yield b'{"pad": ' + _PAD + b', "pad": ' + case + b"}"  # a repeated top-level name
    yield b'\xef\xbb\xbf{"pad": ' + _PAD + b', "x": ' + case + b"}"  # a byte order mark
    yield b'{"pad": ' + _PAD + b', "x": ' + case + b"} {}"  # text after the value
    yield b' \t\r\n{"pad": ' + _PAD + b',\n"x":\t' + case + b" } \n"


def _outcome(body: bytes):
    try:
        return "value", decode_json(body)
    except (InvalidJson, JsonTooDeep) as exc:
        return type(exc).__name__, getattr(exc, "reason", None), getattr(exc, "position", None)


@pytest.mark.parametrize("case", _CASES)
def test_large_objects_decoded_member_by_member_give_what_whole_decoding_gives(case, monkeypatch):
    from app.outbound import jsonsafe

    if jsonsafe.msgspec is None:
        pytest.skip("msgspec not installed: large bodies are decoded whole")
    for body in _large_bodies(case):
        assert len(body) >= jsonsafe.PIECEWISE_BYTES
        piecewise = _outcome(body)
        with monkeypatch.context() as whole:
            whole.setattr(jsonsafe, "PIECEWISE_BYTES", 1 << 40)
            assert _outcome(body) == piecewise


def test_a_large_bundle_is_decoded_member_by_member(monkeypatch):
    from app.outbound import jsonsafe

    if jsonsafe.msgspec is None:
        pytest.skip("msgspec not installed: large bodies are decoded whole")
    calls = []
    real = jsonsafe.orjson.loads
    monkeypatch.setattr(jsonsafe.orjson, "loads", lambda piece: calls.append(len(piece)) or real(piece))
    body = b'{"resourceType": "Bundle", "entry": [' + _ITEMS + b'], "total": 6000}'
    value = decode_json(body)
    assert value["total"] == 6000 and len(value["entry"]) == 6000
    assert value["entry"][-1] == {"fullUrl": "https://x/1", "resource": {"a": [1, 2.5, "é"]}}
    assert len(calls) == 6002 and max(calls) < 100  # each entry on its own, never the whole body
