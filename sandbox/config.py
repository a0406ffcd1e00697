"""Sandbox configuration: defaults, ``SANDBOX_<KEY>`` environment variables, overrides.

Precedence (lowest to highest): :data:`DEFAULTS`, environment variables
``SANDBOX_<KEY>``, the mapping passed to :func:`sandbox.create_app`.
"""

from __future__ import annotations

import json
import os
import re
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
    # the CapabilityStatement omits ImagingStudy and its search answers an empty searchset (as a server that
    # accepts any type's search but offers no ImagingStudy): only the CapabilityStatement tells the app
    "UNDECLARED_IMAGINGSTUDY": False,
    # RFC 9207: ``iss`` on every authorization response (and advertised in discovery)
    "AUTHORIZATION_RESPONSE_ISS": True,
    # OpenID Connect id_token (RS256)
    "ID_TOKEN_LIFETIME": 300,
    "ID_TOKEN_FAULT": None,
    "ID_TOKEN_PRIVATE_KEY": None,
    # extra / replacing client registrations and client keys (private_key_jwt)
    "CLIENTS": [],
    "CLIENT_JWKS": {},
    "CLIENT_JWKS_URIS": {},
    "JWKS_URI_TIMEOUT": 2.0,
    "JWKS_URI_MAX_BYTES": 65536,
    "JWKS_URI_CACHE_SECONDS": 300,
}

#: ``ID_TOKEN_FAULT`` / launch fault ``id_token`` values (see ``sandbox/README.md``).
ID_TOKEN_FAULTS = (
    "bad-signature",
    "wrong-aud",
    "wrong-iss",
    "expired",
    "nonce-mismatch",
    "unknown-kid",
    "rotate-key",
    "alg-none",
    "hs256-with-public-key",
)

#: per-client environment variables: ``SANDBOX_CLIENT_JWKS_<ID>`` / ``SANDBOX_CLIENT_JWKS_URI_<ID>``
#: where ``<ID>`` is the client id upper-cased with every other character than A-Z, 0-9 as ``_``.
CLIENT_JWKS_ENV_PREFIX = "SANDBOX_CLIENT_JWKS_"
CLIENT_JWKS_URI_ENV_PREFIX = "SANDBOX_CLIENT_JWKS_URI_"

_INT_KEYS = {
    "ACCESS_TOKEN_LIFETIME",
    "REFRESH_TOKEN_LIFETIME",
    "CODE_LIFETIME",
    "LAUNCH_LIFETIME",
    "LATENCY_MS",
    "ID_TOKEN_LIFETIME",
    "JWKS_URI_MAX_BYTES",
    "JWKS_URI_CACHE_SECONDS",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(value: Any, key: str) -> bool:
    """``True``/``False`` or one of ``1 true yes on`` / ``0 false no off`` (any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{key} must be a boolean, got {value!r}")


def env_client_name(client_id: str) -> str:
    """``imaging-app-asymmetric`` -> ``IMAGING_APP_ASYMMETRIC`` (suffix of the per-client env vars)."""
    return re.sub(r"[^A-Z0-9]", "_", client_id.upper())


def _json_value(value: Any, key: str) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not text.startswith(("{", "[")):
            text = Path(text).read_text(encoding="utf-8")  # a file path
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{key}: not valid JSON ({exc})") from None
    return value


def _client_env(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Per-client JWKS / jwks_uri from ``SANDBOX_CLIENT_JWKS_<ID>`` / ``SANDBOX_CLIENT_JWKS_URI_<ID>``."""
    jwks, uris = {}, {}
    whole = {f"SANDBOX_{key}" for key in DEFAULTS}
    for name, value in environ.items():
        if not value or name in whole:
            continue
        if name.startswith(CLIENT_JWKS_URI_ENV_PREFIX):
            uris[name[len(CLIENT_JWKS_URI_ENV_PREFIX):]] = value.strip()
        elif name.startswith(CLIENT_JWKS_ENV_PREFIX):
            jwks[name[len(CLIENT_JWKS_ENV_PREFIX):]] = _json_value(value, name)
    return jwks, uris


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
    config["HIDE_IMAGINGSTUDY"] = parse_bool(config["HIDE_IMAGINGSTUDY"], "HIDE_IMAGINGSTUDY")
    config["UNDECLARED_IMAGINGSTUDY"] = parse_bool(config["UNDECLARED_IMAGINGSTUDY"], "UNDECLARED_IMAGINGSTUDY")
    config["AUTHORIZATION_RESPONSE_ISS"] = parse_bool(config["AUTHORIZATION_RESPONSE_ISS"], "AUTHORIZATION_RESPONSE_ISS")
    config["JWKS_URI_TIMEOUT"] = float(config["JWKS_URI_TIMEOUT"])
    fault = config["ID_TOKEN_FAULT"] or None
    if fault is not None and fault not in ID_TOKEN_FAULTS:
        raise ValueError(f"ID_TOKEN_FAULT must be one of {', '.join(ID_TOKEN_FAULTS)}, got {fault!r}")
    config["ID_TOKEN_FAULT"] = fault
    clients = _json_value(config["CLIENTS"], "CLIENTS") or []
    if isinstance(clients, Mapping):
        clients = list(clients.get("clients", []))
    config["CLIENTS"] = [dict(entry) for entry in clients]
    # per-client env vars (lowest), then the SANDBOX_CLIENT_JWKS[_URIS] mapping / override mapping
    env_jwks, env_uris = _client_env(environ)
    env_jwks.update({env_client_name(k): v for k, v in dict(_json_value(config["CLIENT_JWKS"], "CLIENT_JWKS") or {}).items()})
    env_uris.update({env_client_name(k): v for k, v in dict(_json_value(config["CLIENT_JWKS_URIS"], "CLIENT_JWKS_URIS") or {}).items()})
    config["CLIENT_JWKS"] = {k: _json_value(v, f"CLIENT_JWKS[{k}]") for k, v in env_jwks.items()}
    config["CLIENT_JWKS_URIS"] = env_uris
    config["PUBLIC_BASE_URL"] = str(config["PUBLIC_BASE_URL"]).rstrip("/")
    config["APP_ORIGIN"] = str(config["APP_ORIGIN"]).rstrip("/")
    if not config["APP_LAUNCH_URL"]:
        config["APP_LAUNCH_URL"] = config["APP_ORIGIN"] + "/launch"
    return config


def origin_of(url: str) -> str:
    """Return ``scheme://host[:port]`` of *url* (used for CSP source lists)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
