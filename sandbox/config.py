"""Sandbox configuration: defaults, ``SANDBOX_<KEY>`` environment variables, overrides.

Precedence (lowest to highest): :data:`DEFAULTS`, environment variables
``SANDBOX_<KEY>``, the mapping passed to :func:`sandbox.create_app`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PACKAGE_DIR = Path(__file__).resolve().parent

DEFAULTS: dict[str, Any] = {
    "PUBLIC_BASE_URL": "http://localhost:8800",
    "APP_ORIGIN": "http://127.0.0.1:8000",
    "APP_LAUNCH_URL": None,
    "ACCESS_TOKEN_LIFETIME": 3600,
    "REFRESH_TOKEN_LIFETIME": 86400,
    "CODE_LIFETIME": 60,
    "LAUNCH_LIFETIME": 300,
    "LATENCY_MS": 0,
    "CLIENTS_FILE": str(PACKAGE_DIR / "clients.json"),
    "EXTRA_HISTORIES": {},
    "HIDE_IMAGINGSTUDY": False,
}

_INT_KEYS = {
    "ACCESS_TOKEN_LIFETIME",
    "REFRESH_TOKEN_LIFETIME",
    "CODE_LIFETIME",
    "LAUNCH_LIFETIME",
    "LATENCY_MS",
}


def parse_histories(value: str | Mapping[str, int] | None) -> dict[str, int]:
    """Parse extra histories.

    Accepts a mapping ``{"pt-2001": 1000}``, a JSON object string, or
    ``"pt-2001:1000,pt-2002:20"``. Raises ``ValueError`` on a malformed entry
    or a negative count.
    """
    if not value:
        return {}
    if isinstance(value, Mapping):
        items = dict(value).items()
    else:
        text = value.strip()
        if text.startswith("{"):
            items = json.loads(text).items()
        else:
            pairs = []
            for part in filter(None, (p.strip() for p in text.split(","))):
                patient_id, sep, count = part.partition(":")
                if not sep:
                    raise ValueError(f"history must look like ID:N, got {part!r}")
                pairs.append((patient_id.strip(), count))
            items = pairs
    result = {}
    for patient_id, count in items:
        count = int(count)
        if count < 0 or not patient_id:
            raise ValueError(f"bad history {patient_id!r}:{count}")
        result[str(patient_id)] = count
    return result


def load_config(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the effective configuration dict (keys of :data:`DEFAULTS`).

    Raises ``ValueError`` for unparsable integers or histories.
    """
    environ = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for key in DEFAULTS:
        env_value = environ.get(f"SANDBOX_{key}")
        if env_value not in (None, ""):
            config[key] = env_value
    config.update(dict(overrides or {}))
    for key in _INT_KEYS:
        config[key] = int(config[key])
    config["EXTRA_HISTORIES"] = parse_histories(config["EXTRA_HISTORIES"])
    hide = config["HIDE_IMAGINGSTUDY"]
    config["HIDE_IMAGINGSTUDY"] = hide if isinstance(hide, bool) else str(hide).strip().lower() in ("1", "true", "yes", "on")
    config["PUBLIC_BASE_URL"] = str(config["PUBLIC_BASE_URL"]).rstrip("/")
    config["APP_ORIGIN"] = str(config["APP_ORIGIN"]).rstrip("/")
    if not config["APP_LAUNCH_URL"]:
        config["APP_LAUNCH_URL"] = config["APP_ORIGIN"] + "/launch"
    return config


def origin_of(url: str) -> str:
    """Return ``scheme://host[:port]`` of *url* (used for CSP source lists)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
