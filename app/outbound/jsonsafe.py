"""Safe JSON decoding of upstream bodies (RFC 8259), with typed refusals.

Python's :func:`json.loads` recurses per nesting level (``RecursionError`` near
1,000 levels), accepts ``NaN``/``Infinity``/``-Infinity`` (not JSON, RFC 8259 §6),
turns ``1e400`` into ``inf``, keeps the last of duplicate keys (parsers differ:
RFC 8259 §4 says names SHOULD be unique), and guesses UTF-16/32 from bytes.
:func:`decode_json` refuses all of those: the nesting depth is measured
before decoding, in linear time, without recursion.
"""

from __future__ import annotations

import json
import math
import re

from .errors import InvalidJson, JsonTooDeep, UnexpectedContentType

DEFAULT_MAX_DEPTH = 64

_ESCAPE = re.compile(rb"\\.", re.S)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_ONE_BRACKET = bytes.maketrans(b"{}", b"[]")


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
    input the figure is an upper bound of what :func:`json.loads` would reach
    before failing (both read strings the same way up to the first error).
    """
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    skeleton = b"".join(body.translate(None, _NOT_STRUCTURE).split(b'"')[::2]).translate(_ONE_BRACKET)
    passes = 0
    while b"[]" in skeleton:
        passes += 1
        if limit is not None and passes > limit:
            return passes
        skeleton = skeleton.replace(b"[]", b"")
    return passes + skeleton.count(b"[")  # unclosed openings: upper bound


def _refuse_constant(name: str):
    raise InvalidJson("non_finite_number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJson("non_finite_number")
    return value


def _unique_keys(pairs: list) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise InvalidJson("duplicate_key")
    return result


def decode_json(body: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, require_object: bool = False, **context):
    """Decode a UTF-8 JSON body.

    ``max_depth``: most nested arrays/objects allowed (:class:`JsonTooDeep` beyond);
    ``require_object``: the top level must be an object (``InvalidJson("not_an_object")``).
    ``context``: ``kind``/``origin``/``status`` put on the errors.
    Raises :class:`InvalidJson` (``not_utf8``, ``syntax`` with ``position``,
    ``non_finite_number``, ``number_too_long``, ``duplicate_key``, ``not_an_object``)
    and :class:`JsonTooDeep`; never ``RecursionError``.
    """
    if nesting_depth(body, max_depth) > max_depth:
        raise JsonTooDeep(max_depth, **context)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJson("not_utf8", **context) from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                           object_pairs_hook=_unique_keys)
    except InvalidJson as exc:
        raise exc.with_context(**context) from None
    except json.JSONDecodeError as exc:
        raise InvalidJson("syntax", exc.pos, **context) from None
    except RecursionError:  # not reachable after the depth check; kept as a second line
        raise JsonTooDeep(max_depth, **context) from None
    except ValueError:  # int() beyond sys.get_int_max_str_digits()
        raise InvalidJson("number_too_long", **context) from None
    if require_object and not isinstance(value, dict):
        raise InvalidJson("not_an_object", **context)
    return value
