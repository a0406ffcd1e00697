"""The app's registration: ``smart-launch.json`` validated against its JSON Schema, plus environment overrides.

Environment variables (deployment):

``SMART_LAUNCH_CONFIG``  path of the registration file (default: ``smart-launch.json`` at the project root)
``SECRET_KEY``           Flask secret key (signs the session cookie, derives the launch-store key)
``LAUNCH_STORE_PATH``    path of the SQLite launch store (overrides ``launch_store.path``)
``LAUNCH_STORE_URL``     ``sqlite:///path``, ``redis://host:port/db`` or ``rediss://…`` (overrides ``launch_store.url``)
``SECRET_KEY_FALLBACKS`` previous secret keys, comma- or white-space-separated (key rotation)
``<password_env>``       ``launch_store.password_env`` names the variable holding the Redis password
``<client_secret_env>``  each confidential EHR registration names the variable holding its secret
``<private_key_jwt.key_file_envs>``  each asymmetric registration names the variables holding its PEM key *paths*
``AUDIT_LOG_PATH``       file of the audit trail (JSON lines; ``-`` = stdout), overrides ``audit.path``
``LOG_FORMAT``           ``json`` or ``text`` request log lines, overrides ``observability.log_format``
``PROMETHEUS_MULTIPROC_DIR``  prometheus-client's multi-process mode (gunicorn workers), read by prometheus-client
``<dicomweb.basic_auth_env>``  each registration's DICOMweb service may name a variable holding ``user:password``
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any, Mapping

import jsonschema
from authlib.common.security import is_secure_transport

from .urls import iss_key, origin_string

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = Path(__file__).resolve().parent / "smart_launch.schema.json"
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "smart-launch.json"


class ConfigError(Exception):
    """The registration is missing, unreadable or invalid; the message names the key."""


@dataclass(frozen=True)
class PatientIdentifierMapping:
    """A ``Patient.identifier.system`` (e.g. ``urn:oid:2.25.…``) and the DICOM IssuerOfPatientID (0010,0021)
    the PACS records for identifiers of that system (PS3.3 C.7.1.1)."""

    system: str
    issuer_of_patient_id: str


@dataclass(frozen=True)
class DicomwebSettings:
    """A registration's DICOMweb service (DICOM PS3.18): ``base_url`` (before ``/studies``);
    ``send_smart_token``: the service accepts the launch's SMART access token; ``basic_auth_env``: the variable
    holding ``user:password`` for HTTP basic authentication; ``patient_identifiers``: the mapping the QIDO-RS
    fallback list searches with; ``thumbnail_ttl_seconds``: how long thumbnails are kept and may be cached."""

    base_url: str
    send_smart_token: bool = False
    basic_auth_env: str | None = None
    patient_identifiers: tuple[PatientIdentifierMapping, ...] = ()
    thumbnail_ttl_seconds: int = 300

    def basic_credentials(self, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
        """``(user, password)`` from ``basic_auth_env`` (``user:password``), or ``None`` when unset or malformed."""
        if not self.basic_auth_env:
            return None
        value = (os.environ if environ is None else environ).get(self.basic_auth_env) or ""
        user, sep, password = value.partition(":")
        return (user, password) if sep and user else None


@dataclass(frozen=True)
class EhrRegistration:
    """One trusted EHR: its FHIR base (``iss``) and this app's client registration there.

    ``redirect_uri``: where this registration's authorization responses come
    back (its own ``/callback/<name>`` when configured, else the app's ``/callback``).
    """

    name: str
    iss: str
    client_id: str
    redirect_uri: str
    client_secret_env: str | None = None
    scopes: tuple[str, ...] = ()
    frame_ancestors: tuple[str, ...] = ()
    standalone: bool = True
    token_endpoint_auth_method: str = "none"
    private_key_jwt: "PrivateKeyJwtSettings | None" = None
    openid: bool = True
    viewer_origins: tuple[str, ...] = ()
    dicomweb: DicomwebSettings | None = None

    @property
    def frame_origins(self) -> tuple[str, ...]:
        """Origins allowed to frame this EHR's launches: ``frame_ancestors``, else the origin of ``iss``."""
        return self.frame_ancestors or (origin_string(self.iss),)

    @property
    def client_secret(self) -> str | None:
        """The confidential client's secret read from its environment variable, or ``None`` (public client)."""
        if not self.client_secret_env:
            return None
        return os.environ.get(self.client_secret_env)


@dataclass(frozen=True)
class PrivateKeyJwtSettings:
    """``private_key_jwt`` client authentication (SMART App Launch 2.2 §Client Authentication: Asymmetric).

    ``alg``: ``RS384`` or ``ES384``; ``key_file_envs``: names of environment
    variables holding paths of PEM private keys, the first signs, all are
    published at ``/.well-known/jwks.json`` (two during a rotation).
    """

    alg: str
    key_file_envs: tuple[str, ...]


@dataclass(frozen=True)
class AuditSettings:
    """Where the audit trail goes: ``path`` (JSON lines; ``"-"`` = stdout; ``None`` = off), ``fhir_endpoint``
    (a FHIR base URL receiving ``batch`` Bundles of AuditEvents, or ``None``), ``fhir_token_env`` (variable
    holding a Bearer token for it), ``batch_size`` (events per Bundle), ``queue_size`` (events held, the
    oldest dropped beyond it), ``source`` (``AuditEvent.source.observer.display``)."""

    path: str | None = None
    fhir_endpoint: str | None = None
    fhir_token_env: str | None = None
    batch_size: int = 20
    queue_size: int = 1000
    source: str = "imaging-smart-app"


@dataclass(frozen=True)
class ObservabilitySettings:
    """``log_format``: ``json`` or ``text`` request lines; ``metrics_enabled``: serve ``/metrics``;
    ``metrics_allow``: client networks (CIDR) that may read it."""

    log_format: str = "json"
    metrics_enabled: bool = False
    metrics_allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")


@dataclass(frozen=True)
class ViewerSettings:
    """The institution's IID Image Display (IHE RAD TF-2 4.106) and its request defaults."""

    base_url: str
    viewer_type: str | None = "IHE_BIR"
    diagnostic_quality: bool | None = None
    key_images_only: bool | None = None
    frameable: bool = True
    time_zone: str | None = None  # IANA zone the list's times are shown in (labelled once); None: the server's


@dataclass(frozen=True)
class FhirSettings:
    """How studies are fetched: page size (``_count``), page cap, study cap, bytes per answer, timeouts and
    the deadline of one request in seconds, list cache TTL."""

    page_size: int = 200
    max_pages: int = 20
    max_studies: int = 10_000
    max_page_bytes: int = 8 * 1024 * 1024
    deadline_seconds: float = 30.0
    list_deadline_seconds: float = 60.0
    max_concurrent_lists_per_ehr: int | None = 4
    busy_wait_seconds: float = 5.0
    connect_timeout: float = 3.05
    read_timeout: float = 20.0
    study_list_ttl_seconds: int = 60

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` timeout tuple for requests."""
        return (self.connect_timeout, self.read_timeout)


STORE_SCHEMES = ("sqlite", "redis", "rediss")


@dataclass(frozen=True)
class LaunchStoreSettings:
    """Where launches are kept: ``url`` is ``sqlite:///<absolute path>`` (one host) or ``redis[s]://host:port/db``
    (several hosts); ``password_env`` names the environment variable holding the Redis password (never in the
    URL, never in the file); ``key_prefix`` namespaces the app's Redis keys."""

    url: str
    password_env: str | None = None
    key_prefix: str = "imaging-app:"

    @property
    def scheme(self) -> str:
        """``sqlite``, ``redis`` or ``rediss``."""
        return urlsplit(self.url).scheme

    @property
    def password(self) -> str | None:
        """The Redis password from ``password_env``, or ``None``."""
        return os.environ.get(self.password_env) if self.password_env else None


@dataclass(frozen=True)
class Settings:
    """Everything ``create_app()`` needs, validated."""

    redirect_uri: str
    ehrs: tuple[EhrRegistration, ...]
    viewer: ViewerSettings
    fhir: FhirSettings = field(default_factory=FhirSettings)
    store_path: Path = PROJECT_ROOT / "instance" / "launches.sqlite3"
    launch_lifetime_seconds: int = 8 * 3600
    extra_trusted_hosts: tuple[str, ...] = ()
    audit: AuditSettings = field(default_factory=AuditSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    launch_store: LaunchStoreSettings | None = None  # None: SQLite at ``store_path``

    @property
    def store(self) -> LaunchStoreSettings:
        """The launch store's settings (SQLite at ``store_path`` unless ``launch_store.url`` says otherwise)."""
        return self.launch_store or LaunchStoreSettings(url=f"sqlite:///{self.store_path}")

    @property
    def trusted_hosts(self) -> list[str]:
        """Host names the app answers to (Flask ``TRUSTED_HOSTS``): its redirect URI's host, plus ``app.trusted_hosts``."""
        return list(dict.fromkeys([urlsplit(self.redirect_uri).hostname or "", *self.extra_trusted_hosts]))

    @property
    def server_name(self) -> str:
        """``host[:port]`` of the app's redirect URI."""
        return urlsplit(self.redirect_uri).netloc

    def find_ehr(self, iss: str) -> EhrRegistration | None:
        """The registration whose FHIR base equals ``iss`` (scheme, host, port, path), else ``None``.

        No prefix matching: ``https://ehr/fhir-evil`` does not match ``https://ehr/fhir``.
        """
        try:
            key = iss_key(iss)
        except ValueError:
            return None
        for ehr in self.ehrs:
            if iss_key(ehr.iss) == key:
                return ehr
        return None

    @property
    def frame_ancestors(self) -> tuple[str, ...]:
        """Origins allowed to frame pages outside any launch (CSP ``frame-ancestors``): every EHR's."""
        return tuple(dict.fromkeys(origin for ehr in self.ehrs for origin in ehr.frame_origins))


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _key_path(error: jsonschema.ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _relative_base() -> Path:
    """Where relative store paths are taken from: the checkout when running from one, else the working directory.

    An installed package (a wheel) has no checkout: its ``PROJECT_ROOT`` is ``site-packages``.
    """
    return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()


def parse_settings(raw: Mapping[str, Any], *, source: str = "smart-launch.json",
                   environ: Mapping[str, str] | None = None) -> Settings:
    """Validate a registration document and build :class:`Settings`.

    Raises :class:`ConfigError` naming the first offending key, e.g.
    ``smart-launch.json: ehrs[0].iss: 'ftp://x' does not match ...``.
    """
    environ = os.environ if environ is None else environ
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise ConfigError(f"{source}: {_key_path(first)}: {first.message}")

    ehrs = []
    seen: dict[tuple, str] = {}
    redirect_uris: dict[str, str] = {}
    for index, entry in enumerate(raw["ehrs"]):
        key = iss_key(entry["iss"])
        if key in seen:
            raise ConfigError(f"{source}: ehrs[{index}].iss: same FHIR base as {seen[key]!r}")
        seen[key] = entry["name"]
        if not is_secure_transport(entry["iss"]):
            raise ConfigError(f"{source}: ehrs[{index}].iss: must be https (plain http only on loopback), "
                              "or tokens would cross the network in clear")
        secret_env = entry.get("client_secret_env")
        if secret_env and not environ.get(secret_env):
            raise ConfigError(
                f"{source}: ehrs[{index}].client_secret_env: environment variable {secret_env} is not set")
        method = entry.get("token_endpoint_auth_method") or ("client_secret_basic" if secret_env else "none")
        if method == "client_secret_basic" and not secret_env:
            raise ConfigError(f"{source}: ehrs[{index}].token_endpoint_auth_method: client_secret_basic needs "
                              "client_secret_env")
        key_settings = None
        if method == "private_key_jwt":
            pkj = entry.get("private_key_jwt")
            if not pkj:
                raise ConfigError(f"{source}: ehrs[{index}].private_key_jwt: required for private_key_jwt")
            for name in pkj["key_file_envs"]:
                if not environ.get(name):
                    raise ConfigError(f"{source}: ehrs[{index}].private_key_jwt.key_file_envs: environment "
                                      f"variable {name} is not set (it names a PEM private key file)")
            key_settings = PrivateKeyJwtSettings(alg=pkj["alg"], key_file_envs=tuple(pkj["key_file_envs"]))
        redirect_uri = entry.get("redirect_uri") or raw["app"]["redirect_uri"]
        if entry.get("redirect_uri"):
            if origin_string(redirect_uri) != origin_string(raw["app"]["redirect_uri"]):
                raise ConfigError(f"{source}: ehrs[{index}].redirect_uri: must be on the origin of app.redirect_uri")
            if redirect_uri in redirect_uris:
                raise ConfigError(f"{source}: ehrs[{index}].redirect_uri: already used by {redirect_uris[redirect_uri]!r}")
            redirect_uris[redirect_uri] = entry["name"]
        ehrs.append(EhrRegistration(
            name=entry["name"], iss=entry["iss"], client_id=entry["client_id"], redirect_uri=redirect_uri,
            client_secret_env=secret_env, scopes=tuple(entry.get("scopes", ())),
            frame_ancestors=tuple(entry.get("frame_ancestors", ())),
            standalone=entry.get("standalone", True), token_endpoint_auth_method=method,
            private_key_jwt=key_settings, openid=entry.get("openid", True),
            viewer_origins=tuple(origin_string(o) for o in entry.get("viewer_origins", ())),
            dicomweb=_dicomweb(entry.get("dicomweb"), f"{source}: ehrs[{index}].dicomweb", environ)))

    viewer_raw = raw["viewer"]
    viewer = ViewerSettings(
        base_url=viewer_raw["base_url"], viewer_type=viewer_raw.get("viewerType", "IHE_BIR"),
        diagnostic_quality=viewer_raw.get("diagnosticQuality"),
        key_images_only=viewer_raw.get("keyImagesOnly"), frameable=viewer_raw.get("frameable", True),
        time_zone=viewer_raw.get("time_zone"))
    if viewer.time_zone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(viewer.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{source}: viewer.time_zone: unknown time zone {viewer.time_zone!r}") from None
    fhir = FhirSettings(**raw.get("fhir", {}))
    store_raw = raw.get("launch_store", {})
    store_path = Path(environ.get("LAUNCH_STORE_PATH") or store_raw.get("path") or "instance/launches.sqlite3")
    if not store_path.is_absolute():
        store_path = _relative_base() / store_path
    audit_raw = dict(raw.get("audit", {}))
    if environ.get("AUDIT_LOG_PATH"):
        audit_raw["path"] = environ["AUDIT_LOG_PATH"]
    if audit_raw.get("fhir_token_env") and not environ.get(audit_raw["fhir_token_env"]):
        raise ConfigError(f"{source}: audit.fhir_token_env: environment variable {audit_raw['fhir_token_env']} "
                          "is not set")
    obs_raw = raw.get("observability", {})
    log_format = environ.get("LOG_FORMAT") or obs_raw.get("log_format", "json")
    if log_format not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT: {log_format!r} is not 'json' or 'text'")
    metrics_raw = obs_raw.get("metrics", {})
    observability = ObservabilitySettings(
        log_format=log_format, metrics_enabled=metrics_raw.get("enabled", False),
        metrics_allow=tuple(metrics_raw.get("allow", ObservabilitySettings.metrics_allow)))
    return Settings(
        redirect_uri=raw["app"]["redirect_uri"], extra_trusted_hosts=tuple(raw["app"].get("trusted_hosts", ())),
        ehrs=tuple(ehrs), viewer=viewer, fhir=fhir, store_path=store_path,
        launch_lifetime_seconds=store_raw.get("lifetime_seconds", 8 * 3600),
        audit=AuditSettings(**audit_raw), observability=observability,
        launch_store=_launch_store(store_raw, store_path, source, environ))


def _dicomweb(raw: Mapping[str, Any] | None, where: str, environ: Mapping[str, str]) -> DicomwebSettings | None:
    """``ehrs[].dicomweb`` as :class:`DicomwebSettings`; raises :class:`ConfigError` for a plain-http base off
    loopback or an unset or malformed ``basic_auth_env`` (it must hold ``user:password``)."""
    if raw is None:
        return None
    if not is_secure_transport(raw["base_url"]):
        raise ConfigError(f"{where}.base_url: must be https (plain http only on loopback)")
    settings = DicomwebSettings(
        base_url=raw["base_url"].rstrip("/"), send_smart_token=raw.get("send_smart_token", False),
        basic_auth_env=raw.get("basic_auth_env"),
        patient_identifiers=tuple(PatientIdentifierMapping(m["system"], m["issuer_of_patient_id"])
                                  for m in raw.get("patient_identifiers", ())),
        thumbnail_ttl_seconds=raw.get("thumbnail_ttl_seconds", 300))
    if settings.basic_auth_env and settings.basic_credentials(environ) is None:
        raise ConfigError(f"{where}.basic_auth_env: environment variable {settings.basic_auth_env} is not set "
                          "or is not user:password")
    return settings


def _launch_store(store_raw: Mapping[str, Any], store_path: Path, source: str,
                  environ: Mapping[str, str]) -> LaunchStoreSettings:
    """``launch_store`` as :class:`LaunchStoreSettings` (``$LAUNCH_STORE_URL`` wins over ``url``, ``url`` over
    ``path``); raises :class:`ConfigError` for another scheme, a password in the URL, or an unset ``password_env``."""
    url = environ.get("LAUNCH_STORE_URL") or store_raw.get("url") or f"sqlite:///{store_path}"
    where = "LAUNCH_STORE_URL" if environ.get("LAUNCH_STORE_URL") else "launch_store.url"
    parts = urlsplit(url)
    if parts.scheme not in STORE_SCHEMES:
        raise ConfigError(f"{source}: {where}: must start with sqlite:///, redis:// or rediss://")
    if parts.scheme == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        url = f"sqlite:///{path if path.is_absolute() else _relative_base() / path}"
    elif parts.password is not None:
        raise ConfigError(f"{source}: {where}: no password in the URL; name its environment variable in "
                          "launch_store.password_env")
    elif not parts.hostname:
        raise ConfigError(f"{source}: {where}: no host")
    password_env = store_raw.get("password_env")
    if password_env and not environ.get(password_env):
        raise ConfigError(f"{source}: launch_store.password_env: environment variable {password_env} is not set")
    return LaunchStoreSettings(url=url, password_env=password_env,
                               key_prefix=store_raw.get("key_prefix", "imaging-app:"))


def load_settings(path: str | os.PathLike | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the registration file.

    ``path`` defaults to ``$SMART_LAUNCH_CONFIG`` or ``smart-launch.json`` at the project root.
    Raises :class:`ConfigError` when the file is missing, is not JSON, or is invalid.
    """
    environ = os.environ if environ is None else environ
    config_path = Path(path or environ.get("SMART_LAUNCH_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: file not found (set SMART_LAUNCH_CONFIG)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_settings(raw, source=str(config_path), environ=environ)
