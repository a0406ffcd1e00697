"""The EHR's look: the ``smart_style_url`` document, fetched through the guarded client and validated strictly.

SMART App Launch 2.2 §Styling: the token response may carry ``smart_style_url``, a JSON
object of ``color_*`` (CSS colours), ``dim_*`` (CSS lengths) and ``font_family_*`` (CSS
font-family lists), e.g. ``color_background``, ``color_highlight``, ``color_text``,
``dim_border_radius``, ``font_family_body``. The app turns the values it accepts into CSS
custom properties (``--smart-color-background: #f6f8fa``) served from its own origin, so the
Content-Security-Policy stays ``style-src 'self'``.

Where the document may be fetched from (:func:`style_origins`): the origin of ``iss`` and the
origins the registration lists for the EHR (``ehrs[].frame_ancestors``, the EHR's own web
origins), nowhere else; the exchange kind ``"style"`` caps it at 16 KiB and 5 s
(:data:`app.outbound.policy.DEFAULT_LIMITS`), redirects are not followed and no token is sent.

Validation (:func:`validate_style`) keeps a value only when it matches a strict grammar:

* ``color_*``: ``#rgb``, ``#rgba``, ``#rrggbb``, ``#rrggbbaa``, ``rgb()``/``rgba()`` with
  numbers or percentages, or a CSS named colour (:data:`NAMED_COLORS`);
* ``dim_*``: a non-negative number with ``px``, ``em``, ``rem``, ``pt`` or ``%`` (or ``0``);
* ``font_family_*``: up to 10 comma-separated families, each a quoted name
  (letters, digits, spaces, ``-``) or unquoted words of the same characters.

Anything else (another key, a ``url()``, ``;``, ``}``, a backslash, an over-long value) is dropped.
"""

from __future__ import annotations

import logging
import re
from typing import Mapping

from ..config import EhrRegistration
from ..outbound import OutboundClient, OutboundError
from ..urls import origin_string

log = logging.getLogger(__name__)

MAX_VALUE_LENGTH = 200
MAX_KEYS = 64
MAX_FAMILIES = 10

KEY = re.compile(r"(color|dim|font_family)_[a-z][a-z0-9_]{0,39}")
HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_NUM = r"(?:\d{1,3}(?:\.\d{1,3})?%?)"
_ALPHA = r"(?:0|1|0?\.\d{1,3}|\d{1,3}%)"
RGB_COLOR = re.compile(rf"rgba?\(\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*(?:,\s*{_ALPHA}\s*)?\)")
LENGTH = re.compile(r"0|\d{1,4}(?:\.\d{1,3})?(?:px|em|rem|pt|%)")
_WORD = r"-?[A-Za-z][A-Za-z0-9-]*"
FAMILY = re.compile(rf"{_WORD}(?: {_WORD})*|\"[A-Za-z0-9 -]{{1,60}}\"|'[A-Za-z0-9 -]{{1,60}}'")

NAMED_COLORS = frozenset("""
aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue blueviolet brown burlywood
cadetblue chartreuse chocolate coral cornflowerblue cornsilk crimson cyan darkblue darkcyan darkgoldenrod darkgray
darkgreen darkgrey darkkhaki darkmagenta darkolivegreen darkorange darkorchid darkred darksalmon darkseagreen
darkslateblue darkslategray darkslategrey darkturquoise darkviolet deeppink deepskyblue dimgray dimgrey dodgerblue
firebrick floralwhite forestgreen fuchsia gainsboro ghostwhite gold goldenrod gray green greenyellow grey honeydew
hotpink indianred indigo ivory khaki lavender lavenderblush lawngreen lemonchiffon lightblue lightcoral lightcyan
lightgoldenrodyellow lightgray lightgreen lightgrey lightpink lightsalmon lightseagreen lightskyblue lightslategray
lightslategrey lightsteelblue lightyellow lime limegreen linen magenta maroon mediumaquamarine mediumblue
mediumorchid mediumpurple mediumseagreen mediumslateblue mediumspringgreen mediumturquoise mediumvioletred
midnightblue mintcream mistyrose moccasin navajowhite navy oldlace olive olivedrab orange orangered orchid
palegoldenrod palegreen paleturquoise palevioletred papayawhip peachpuff peru pink plum powderblue purple
rebeccapurple red rosybrown royalblue saddlebrown salmon sandybrown seagreen seashell sienna silver skyblue
slateblue slategray slategrey snow springgreen steelblue tan teal thistle tomato transparent turquoise violet
wheat white whitesmoke yellow yellowgreen
""".split())


def valid_color(value: str) -> bool:
    """A CSS colour in the strict subset above (hex, ``rgb()``/``rgba()``, named)."""
    return bool(HEX_COLOR.fullmatch(value) or RGB_COLOR.fullmatch(value) or value.lower() in NAMED_COLORS)


def valid_length(value: str) -> bool:
    """A non-negative CSS length (``px``, ``em``, ``rem``, ``pt``, ``%``) or ``0``."""
    return bool(LENGTH.fullmatch(value))


def valid_font_family(value: str) -> bool:
    """A font-family list of at most :data:`MAX_FAMILIES` quoted or unquoted names."""
    families = [f.strip() for f in value.split(",")]
    return 0 < len(families) <= MAX_FAMILIES and all(FAMILY.fullmatch(f) for f in families)


_CHECKS = {"color": valid_color, "dim": valid_length, "font_family": valid_font_family}


def validate_style(document: object) -> dict[str, str]:
    """The accepted ``{key: value}`` pairs of a style document (a JSON object); everything else dropped.

    Values are stripped strings of at most 200 characters; keys match :data:`KEY`; at most 64 keys
    are looked at. A document that is not an object gives ``{}``.
    """
    if not isinstance(document, Mapping):
        return {}
    accepted: dict[str, str] = {}
    for key, value in list(document.items())[:MAX_KEYS]:
        if not (isinstance(key, str) and isinstance(value, str)):
            continue
        match = KEY.fullmatch(key)
        value = value.strip()
        if match is None or not value or len(value) > MAX_VALUE_LENGTH:
            continue
        if _CHECKS[match.group(1)](value):
            accepted[key] = value
    return accepted


def css_variable(key: str) -> str:
    """``color_background`` → ``--smart-color-background``."""
    return "--smart-" + key.replace("_", "-")


def stylesheet(style: Mapping[str, str]) -> str:
    """``:root { --smart-…: …; }`` for validated ``style`` (:func:`validate_style`), ``""`` when empty."""
    if not style:
        return ""
    body = "".join(f"  {css_variable(k)}: {v};\n" for k, v in sorted(style.items()))
    return ":root {\n" + body + "}\n"


def style_origins(ehr: EhrRegistration, iss: str) -> tuple[str, ...]:
    """Origins a style document may come from: ``iss``'s and the registration's listed EHR origins."""
    return tuple(dict.fromkeys([origin_string(iss), *ehr.frame_ancestors]))


def fetch_style(url: str, ehr: EhrRegistration, iss: str, outbound: OutboundClient) -> dict[str, str]:
    """The validated style at ``url`` (GET, ``Accept: application/json``, no credentials), ``{}`` on any failure.

    Only :func:`style_origins` may be reached; the ``"style"`` exchange limits apply. A
    failure is logged by type only (the URL may carry tenant paths).
    """
    try:
        policy = outbound.policy("style", *style_origins(ehr, iss))
        response = outbound.get(url, policy=policy, headers={"Accept": "application/json"})
        if response.status != 200:
            log.info("smart_style_url answered HTTP %s", response.status)
            return {}
        return validate_style(response.json_object())
    except OutboundError as exc:
        log.info("smart_style_url not used: %s", type(exc).__name__)
        return {}
