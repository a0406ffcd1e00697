"""Safe JSON decoding of upstream bodies (RFC 8259), with typed refusals.

Python's :func:`json.loads` recurses per nesting level (``RecursionError`` near
1,000 levels), accepts ``NaN``/``Infinity``/``-Infinity`` (not JSON, RFC 8259 §6),
turns ``1e400`` into ``inf``, keeps the last of duplicate keys (parsers differ:
RFC 8259 §4 says names SHOULD be unique), and guesses UTF-16/32 from bytes.
:func:`decode_json` refuses all of those: the nesting depth is measured
before decoding, in linear time, without recursion.

Decoding is orjson's (measured on a 1,000-study ImagingStudy Bundle of 2.6 MB,
best of 25, CPU time on a shared 2-core machine: ``json.loads`` with the
refusal hooks 40–47 ms, this function 32–36 ms, of which orjson itself 17 ms
and the checks below 13 ms; msgspec's untyped decoder was no faster than
orjson; a large body is decoded with the cyclic collector paused). orjson
refuses ``NaN``/``Infinity``, numbers beyond a double, invalid UTF-8, a BOM
and lone surrogates by itself, but keeps the last of duplicate keys, so
duplicates are found by counting: the members written in the text (the ``:``
outside strings, counted in the same C-speed pass that measures the depth)
against the members of the decoded value (the ``":`` of its compact orjson
re-encoding when that holds no backslash, else its ``:`` outside strings;
about 4 ms for 2.7 MB): fewer decoded members means a repeated name. The
skeleton is split a 64 KB piece at a time (0.2 MB of objects at once, not
15 MB). Measured with ``bench/decode.py`` on the sandbox's 1,000-study page
(2.7 MB): skeleton 5 ms, orjson 17–20 ms, duplicate count 4 ms; orjson's own
peak while decoding is about 16 times the body (45 MB of Python-allocated
memory at once, of which 11.6 MB stays as the decoded page). Integers beyond 64 bits are decoded as floats (FHIR
integers are 32 or 64 bits).
"""

from __future__ import annotations

import gc
import re
import threading
from contextlib import contextmanager
from typing import Iterator

import orjson

try:  # member by member decoding of large bodies (optional: without it a body is decoded whole)
    import msgspec
except ImportError:  # pragma: no cover - the dependency is declared; the whole-body path stays correct
    msgspec = None

from .errors import InvalidJson, JsonTooDeep, UnexpectedContentType

DEFAULT_MAX_DEPTH = 64
GC_PAUSE_BYTES = 64 * 1024  # bodies from this size are decoded with the cyclic collector paused
PIECEWISE_BYTES = 256 * 1024  # objects from this size are decoded member by member (see _loads_piecewise)

_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a large document is decoded into objects.

    Decoding creates many container objects at once, which sets off full
    collections that walk every live object (measured: 60 % of the time to open
    a sealed 10,000-study list, about half of decoding a 2.6 MB Bundle). What is
    decoded (dicts, lists, tuples, dataclasses) holds no reference cycles, so
    reference counting frees it all the same: memory is not held longer.
    Process-wide and nestable across threads: the collector is re-enabled when
    the last pause ends, and only if it was enabled when the first began.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()

_ESCAPE = re.compile(rb"\\.", re.S)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}:')
_NOT_QUOTE_OR_COLON = bytes(b for b in range(256) if b not in b'":')
_ONE_BRACKET = bytes.maketrans(b"{}", b"[]")


_PIECE = 64 * 1024  # bytes of the quotes-and-kept skeleton split at a time (bounds the list of pieces)


def _structure(body: bytes, keep: bytes = _NOT_STRUCTURE) -> bytes:
    """``body`` with escapes, string contents and everything but the kept characters (and quotes) removed.

    The skeleton of kept characters and quotes is split on quotes a piece at a time, keeping the parts
    outside strings (the quote parity carried from piece to piece): the same result as splitting it whole,
    without a list of one part per string of the document (measured on a 2.7 MB Bundle: 14.6 MB of
    Python objects at once before, 0.2 MB now, the same 7 ms).
    """
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    skeleton = body.translate(None, keep)
    if len(skeleton) <= _PIECE:
        return b"".join(skeleton.split(b'"')[::2])
    kept = []
    inside = 0  # 1 when the piece starts inside a string
    for start in range(0, len(skeleton), _PIECE):
        parts = skeleton[start:start + _PIECE].split(b'"')
        kept.append(b"".join(parts[inside::2]))
        inside = (inside + len(parts) - 1) % 2
    return b"".join(kept)


def _bracket_depth(skeleton: bytes, limit: int | None) -> int:
    """Nesting depth of a skeleton of ``[]{}`` (colons are dropped first)."""
    skeleton = skeleton.translate(_ONE_BRACKET, b":")
    passes = 0
    while b"[]" in skeleton:
        passes += 1
        if limit is not None and passes > limit:
            return passes
        skeleton = skeleton.replace(b"[]", b"")
    return passes + skeleton.count(b"[")  # unclosed openings: upper bound


def media_type(content_type: str | None) -> str | None:
    """The lower-cased ``type/subtype`` of a ``Content-Type`` value, without parameters (``None`` when absent)."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def is_json_media_type(content_type: str | None) -> bool:
    """True for ``application/json`` and any ``type/subtype+json`` (RFC 6839 §3.1; e.g. ``application/fhir+json``)."""
    media = media_type(content_type)
    if not media or media.count("/") != 1:
        return False
    top, sub_type = media.split("/")
    return bool(top) and (media == "application/json" or (sub_type.endswith("+json") and len(sub_type) > 5))


def require_json_media_type(content_type: str | None, **context) -> None:
    """Raise :class:`UnexpectedContentType` unless :func:`is_json_media_type`."""
    if not is_json_media_type(content_type):
        raise UnexpectedContentType(media_type(content_type), **context)


def nesting_depth(body: bytes, limit: int | None = None) -> int:
    """Deepest array/object nesting of a JSON text (0 for a scalar), ignoring brackets inside strings.

    No recursion, C-speed passes: escapes are dropped, everything but quotes and
    brackets is dropped, string contents (between quotes) are dropped, then
    innermost ``[]`` pairs are removed one level per pass. With ``limit``, stops
    after ``limit + 1`` passes (the result is then ``> limit``). On malformed
    input the figure is an upper bound of what a parser would reach
    before failing (both read strings the same way up to the first error).
    """
    return _bracket_depth(_structure(body), limit)


def _decoded_members(value) -> int:
    """How many object members ``value`` (decoded) holds, at any depth.

    Counted in its compact orjson encoding: without any backslash there, no string holds a quote, so each
    ``":`` ends a member's name (half the time of the skeleton pass, which counts otherwise).
    """
    if not isinstance(value, (dict, list)):
        return 0
    encoded = orjson.dumps(value)
    if b"\\" not in encoded:
        return encoded.count(b'":')
    return _structure(encoded, _NOT_QUOTE_OR_COLON).count(b":")


def _classify(body: bytes, exc: orjson.JSONDecodeError, context: dict) -> InvalidJson:
    """The :class:`InvalidJson` for an orjson refusal (the same reasons :func:`json.loads` gave)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidJson("not_utf8", **context)
    message = str(exc)
    if "infinity" in message:  # a number beyond a double: an integer literal that long, else a huge exponent
        number = re.match(r"-?\d+", text[exc.pos:exc.pos + 5000])
        following = text[exc.pos + number.end():exc.pos + number.end() + 1] if number else ""
        if number and following not in (".", "e", "E") and len(number.group(0).lstrip("-")) > 300:
            return InvalidJson("number_too_long", **context)
        return InvalidJson("non_finite_number", **context)
    if re.match(r"-?(NaN|Infinity)", text[exc.pos:exc.pos + 9]):
        return InvalidJson("non_finite_number", **context)
    return InvalidJson("syntax", exc.pos, **context)


_BOM = b"\xef\xbb\xbf"
_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw]) if msgspec else None
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw]) if msgspec else None


def _loads_piecewise(body: bytes):
    """The value of a large JSON object, its members (and the items of array members) decoded one at a time,
    or ``None`` when that does not apply or fails (the caller then decodes the body whole, which refuses it
    for the reason it would have given anyway).

    msgspec cuts the top level into raw members (no copies; it checks the syntax around them) and the
    array members into raw items; orjson decodes each piece with the refusals it applies to a whole body
    (non-finite numbers, invalid UTF-8, lone surrogates…). The result equals ``orjson.loads(body)``, except
    that a repeated top-level name keeps its last value: duplicates are refused by the member count
    afterwards in both paths. What it saves: orjson's working memory while decoding is about 16 times
    the text at once (45 MB for a 2.7 MB Bundle), one piece at a time it is that of a piece (measured with
    ``bench/decode.py``: peak of decoding a 1,000-study page 45 → 14 MB, CPU the same or less).
    """
    if _MEMBERS is None or not body.lstrip()[:1] == b"{" or body.startswith(_BOM):
        return None
    loads = orjson.loads
    try:
        value = {}
        for name, raw in _MEMBERS.decode(body).items():
            piece = memoryview(raw)
            if piece[:1] == b"[" and len(piece) >= GC_PAUSE_BYTES:
                value[name] = [loads(memoryview(item)) for item in _ITEMS.decode(piece)]
            else:
                value[name] = loads(piece)
        return value
    except (msgspec.DecodeError, orjson.JSONDecodeError, ValueError):
        return None


def decode_json(body: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, require_object: bool = False, **context):
    """Decode a UTF-8 JSON body.

    ``max_depth``: most nested arrays/objects allowed (:class:`JsonTooDeep` beyond);
    ``require_object``: the top level must be an object (``InvalidJson("not_an_object")``).
    ``context``: ``kind``/``origin``/``status`` put on the errors.
    Raises :class:`InvalidJson` (``not_utf8``, ``syntax`` with ``position``,
    ``non_finite_number``, ``number_too_long``, ``duplicate_key``, ``not_an_object``)
    and :class:`JsonTooDeep`; never ``RecursionError``.
    """
    skeleton = _structure(body)
    if _bracket_depth(skeleton, max_depth) > max_depth:
        raise JsonTooDeep(max_depth, **context)
    try:
        if len(body) >= GC_PAUSE_BYTES:
            with paused_gc():
                value = _loads_piecewise(body) if len(body) >= PIECEWISE_BYTES else None
                if value is None:
                    value = orjson.loads(body)
        else:
            value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _classify(body, exc, context) from None
    try:
        members = _decoded_members(value)
    except orjson.JSONEncodeError:  # only a piecewise value can hold what orjson will not encode (a lone
        try:                         # surrogate in a top-level name): decoded whole, it is refused as ever
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _classify(body, exc, context) from None
        members = _decoded_members(value)
    if isinstance(value, (dict, list)) and members != skeleton.count(b":"):
        raise InvalidJson("duplicate_key", **context)
    if require_object and not isinstance(value, dict):
        raise InvalidJson("not_an_object", **context)
    return value
