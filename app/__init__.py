"""Imaging SMART on FHIR app: lists the launch patient's ImagingStudy resources and shows them via IHE IID.

Build it with :func:`create_app`; run it with ``python -m app`` (development)
or ``gunicorn 'app:create_app()'`` (production, behind TLS).

Layers (imports only run downward): ``web`` (views, presenter, error pages)
on top; ``launches`` (typed state, store, per-request context); ``smart``
(discovery, authorization), ``fhir`` (client, ImagingStudy, Patient, study
list) and ``display`` (IID requests); at the ground ``config``, ``urls``,
``dicom`` and ``http`` (the one way out).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any, Mapping

from flask import Flask

from .audit import AUDIT_LIMITS, AuditEventBuilder, AuditTrail, FhirAuditSink, JsonLinesSink
from .config import PROJECT_ROOT, ConfigError, Settings, load_settings, parse_settings
from .outbound import OutboundClient
from .dicomweb.service import DICOMWEB_LIMITS
from .launches.bulkheads import EhrBulkheads
from .launches.errors import StoreUnavailable
from .launches.images import LaunchImages
from .observability import metrics
from .observability.endpoints import register_endpoints
from .observability.executor import ContextThreadPoolExecutor
from .observability.requests import install_request_logging
from .launches.stores import open_store
from .outbound import ExchangeLimits
from .outbound.observe import OBSERVERS
from .smart.client_auth import published_jwks, signing_keys_for
from .smart.discovery import SmartDiscovery
from .smart.jwks import JWKS_LIMITS, JwksCache

__all__ = ["create_app", "ConfigError"]


MIN_SECRET_KEY_BYTES = 32


def _secret_key(instance_dir: Path) -> str:
    """``$SECRET_KEY`` (at least 32 bytes), else a random key kept in ``instance/secret_key`` (development only).

    Raises :class:`ConfigError` for a shorter ``$SECRET_KEY``.
    """
    if os.environ.get("SECRET_KEY"):
        key = os.environ["SECRET_KEY"]
        if len(key.encode("utf-8")) < MIN_SECRET_KEY_BYTES:
            raise ConfigError(f"SECRET_KEY: at least {MIN_SECRET_KEY_BYTES} bytes are needed (it signs cookies and "
                              "keys the launch store); make one with: python3 -c 'import secrets; "
                              "print(secrets.token_urlsafe(48))'")
        return key
    if not (PROJECT_ROOT / "pyproject.toml").is_file():  # an installed package has no checkout to keep a key in
        raise ConfigError("SECRET_KEY is not set (required when the app is installed as a package); make one with: "
                          "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'")
    path = instance_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key, encoding="utf-8")
    path.chmod(0o600)
    logging.getLogger(__name__).warning("SECRET_KEY not set: using a generated key in %s", path)
    return key


def _audit_trail(settings: Settings, outbound: OutboundClient) -> AuditTrail:
    """The configured sinks: a JSON-lines file (or stdout) and/or a FHIR endpoint (background)."""
    sinks = []
    if settings.audit.path:
        sinks.append(JsonLinesSink(settings.audit.path))
    if settings.audit.fhir_endpoint:
        token = os.environ.get(settings.audit.fhir_token_env) if settings.audit.fhir_token_env else None
        sinks.append(FhirAuditSink(settings.audit.fhir_endpoint, outbound, token=token,
                                   batch_size=settings.audit.batch_size, queue_size=settings.audit.queue_size))
    return AuditTrail(sinks)


def _secret_key_fallbacks(environ: Mapping[str, str] = os.environ) -> list[str]:
    """``$SECRET_KEY_FALLBACKS``: previous keys, newest first, comma- or white-space-separated.

    Cookies signed and launch records sealed under them stay valid until they
    expire (README, "Key rotation"). Raises :class:`ConfigError` for a key shorter than 32 bytes.
    """
    keys = [k for k in re.split(r"[\s,]+", environ.get("SECRET_KEY_FALLBACKS", "")) if k]
    for index, key in enumerate(keys):
        if len(key.encode("utf-8")) < MIN_SECRET_KEY_BYTES:
            raise ConfigError(f"SECRET_KEY_FALLBACKS: key {index + 1} is shorter than {MIN_SECRET_KEY_BYTES} bytes")
    return keys


def _resource_folder(name: str) -> str:
    """``templates`` / ``static``: the installed package's copy (``app/<name>``, put there by the wheel build,
    ``setup.py``) when present, else the checkout's top-level folder."""
    packaged = Path(__file__).resolve().parent / name
    return str(packaged if packaged.is_dir() else PROJECT_ROOT / name)


#: background loaders of older ImagingStudy pages per process (each holds one per-EHR bulkhead slot as well)
LOADER_THREADS = 8


def create_app(registration: Mapping[str, Any] | None = None, *, secret_key: str | None = None,
               store_path: str | os.PathLike | None = None,
               secret_key_fallbacks: list[str] | None = None) -> Flask:
    """Build the Flask app.

    ``registration``: a ``smart-launch.json`` document as a dict (tests);
    default: the file named by ``$SMART_LAUNCH_CONFIG`` or ``smart-launch.json``.
    ``secret_key`` / ``store_path`` / ``secret_key_fallbacks`` override ``$SECRET_KEY`` /
    ``$LAUNCH_STORE_PATH`` (and ``launch_store.url``) / ``$SECRET_KEY_FALLBACKS``.
    Raises :class:`~app.config.ConfigError` naming the bad key when the registration is invalid.
    """
    from .web import init_app
    from .web.services import Services

    settings = parse_settings(registration, source="registration") if registration is not None \
        else load_settings()
    app = Flask(__name__, template_folder=_resource_folder("templates"),
                static_folder=_resource_folder("static"), instance_path=str(PROJECT_ROOT / "instance"))
    app.config["SECRET_KEY"] = secret_key or _secret_key(Path(app.instance_path))
    fallbacks = _secret_key_fallbacks() if secret_key_fallbacks is None else secret_key_fallbacks
    app.config["SECRET_KEY_FALLBACKS"] = fallbacks  # Flask >= 3.1: cookies signed under them are still read
    app.config["TRUSTED_HOSTS"] = settings.trusted_hosts  # other Host headers: 400 (no Location, no log of the URL)
    app.config["SERVER_NAME"] = settings.server_name  # url_for outside requests; routing is not restricted by it
    outbound = OutboundClient(settings.fhir.connect_timeout, settings.fhir.read_timeout,
                              ca_bundle=os.environ.get("OUTBOUND_CA_BUNDLE") or os.environ.get("REQUESTS_CA_BUNDLE"),
                              limits={
        "fhir": ExchangeLimits(max_bytes=settings.fhir.max_page_bytes, deadline_seconds=settings.fhir.deadline_seconds),
        "jwks": JWKS_LIMITS, "audit": AUDIT_LIMITS, **DICOMWEB_LIMITS})
    client_keys = [signing_keys_for(ehr) for ehr in settings.ehrs if ehr.token_endpoint_auth_method == "private_key_jwt"]
    try:
        allowlist = metrics.AddressAllowlist(settings.observability.metrics_allow)
    except ValueError as exc:
        raise ConfigError(f"observability.metrics.allow: {exc}") from None
    if metrics.observe_upstream not in OBSERVERS:
        OBSERVERS.append(metrics.observe_upstream)
    try:
        store = open_store(settings.store, app.config["SECRET_KEY"], fallbacks, path_override=store_path)
        store.purge_expired()
    except StoreUnavailable as exc:
        if store_path is not None or settings.store.scheme == "sqlite":
            raise ConfigError(f"launch store {exc.path}: not a usable SQLite database ({exc.problem}). Move the "
                              "file aside (only launches in progress are lost) or set LAUNCH_STORE_PATH, then start "
                              "again.") from None
        raise ConfigError(f"launch store {exc.path}: Redis cannot be used ({exc.problem}). Check launch_store.url, "
                          "the password variable named by launch_store.password_env, and that Redis is up.") from None
    logging.getLogger("fhirclient").setLevel(logging.ERROR)  # its model warnings may quote resource data
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings quote URLs with patient ids
    install_request_logging(app, settings.observability.log_format,
                            on_request=lambda route, status: metrics.HTTP_REQUESTS.labels(route, str(status)).inc())
    discovery = SmartDiscovery(outbound)
    init_app(app, Services(settings=settings, outbound=outbound, discovery=discovery, store=store,
                           executor=ContextThreadPoolExecutor(max_workers=8, thread_name_prefix="fhir"),
                           jwks=JwksCache(outbound), audit=_audit_trail(settings, outbound),
                           audit_events=AuditEventBuilder(settings.audit.source), app_jwks=published_jwks(client_keys),
                           images=LaunchImages(discovery, outbound),
                           bulkheads=EhrBulkheads(settings.fhir.max_concurrent_lists_per_ehr,
                                                  settings.fhir.busy_wait_seconds),
                           loaders=ContextThreadPoolExecutor(max_workers=LOADER_THREADS, thread_name_prefix="loader")))
    from .web.style import register_style
    register_style(app)  # GET /l/<launch>/style.css: the EHR's smart_style_url as CSS variables
    register_endpoints(app, ready_check=lambda: store.reload("readyz-probe"),
                       metrics_enabled=settings.observability.metrics_enabled, allowlist=allowlist)
    app.wsgi_app = _Liveness(app.wsgi_app)
    return app


class _Liveness:
    """``GET /healthz`` answered before Flask, whatever the Host header (load balancers probe by address)."""

    BODY = b'{"status":"ok"}'

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                                      ("Content-Length", str(len(self.BODY)))])
            return [self.BODY]
        return self.wsgi_app(environ, start_response)
