"""Asymmetric client authentication: ``private_key_jwt`` (SMART App Launch 2.2 §Client Authentication: Asymmetric;
RFC 7523 §2.2, §3; OpenID Connect Core §9).

The app signs a short-lived JWT for every token request (code exchange and
refresh): header ``alg`` (``RS384`` or ``ES384``), ``kid`` (RFC 7638 thumbprint
of the public key), ``typ: JWT``; claims ``iss`` = ``sub`` = client id, ``aud`` =
the token endpoint URL, ``iat``, ``exp`` = ``iat`` + :data:`ASSERTION_LIFETIME_SECONDS`
(at most 300 s, SMART 2.2), a unique ``jti``. Signing is authlib's
:class:`~authlib.oauth2.rfc7523.PrivateKeyJWT` over joserfc keys: no crypto here.

Keys are PEM files whose *paths* are in environment variables
(``private_key_jwt.key_file_envs``): the first key signs, every key is
published in the app's JWK Set (``GET /.well-known/jwks.json``), so a new key
can be published before it signs (rotation). Private parts never leave this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from joserfc.jwk import ECKey, RSAKey

from ..config import ConfigError, EhrRegistration

ASSERTION_LIFETIME_SECONDS = 240
"""``exp - iat`` of a client assertion (SMART 2.2: no more than five minutes)."""

_KEY_TYPES = {"RS384": ("RSA", RSAKey), "ES384": ("EC", ECKey)}


@dataclass(frozen=True)
class SigningKeys:
    """One registration's keys: ``alg``, ``keys`` (joserfc private keys, the first signs), their ``kid`` values."""

    alg: str
    keys: tuple

    @property
    def signing_key(self):
        """The key that signs (the first)."""
        return self.keys[0]

    @property
    def kid(self) -> str:
        """``kid`` of the signing key (RFC 7638 SHA-256 thumbprint)."""
        return self.signing_key.thumbprint()

    def public_jwks(self) -> list[dict]:
        """Public JWKs (no private members) with ``kid``, ``alg`` and ``use: sig``."""
        return [{**key.as_dict(private=False), "kid": key.thumbprint(), "alg": self.alg, "use": "sig"}
                for key in self.keys]


def load_signing_keys(ehr: EhrRegistration, environ: Mapping[str, str] | None = None) -> SigningKeys | None:
    """The registration's ``private_key_jwt`` keys read from the PEM files its variables name; ``None`` if not asymmetric.

    Raises :class:`~app.config.ConfigError` naming the variable when a file is
    missing, unreadable, not a private key, or of the wrong type for ``alg``
    (RSA for RS384 at 2048 bits or more; EC P-384 for ES384).
    """
    settings = ehr.private_key_jwt
    if ehr.token_endpoint_auth_method != "private_key_jwt" or settings is None:
        return None
    environ = os.environ if environ is None else environ
    kty, key_class = _KEY_TYPES[settings.alg]
    keys = []
    for name in settings.key_file_envs:
        path = Path(environ.get(name, ""))
        try:
            key = key_class.import_key(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read the key file {path} ({exc.strerror})") from None
        except Exception:
            raise ConfigError(f"{name}: {path} is not a PEM {kty} private key (needed for {settings.alg})") from None
        if not key.is_private:
            raise ConfigError(f"{name}: {path} holds a public key; a private key is needed")
        if settings.alg == "ES384" and key.as_dict(private=False).get("crv") != "P-384":
            raise ConfigError(f"{name}: {path}: ES384 needs a P-384 key")
        if settings.alg == "RS384" and key.raw_value.key_size < 2048:
            raise ConfigError(f"{name}: {path}: RS384 needs an RSA key of at least 2048 bits")
        keys.append(key)
    return SigningKeys(alg=settings.alg, keys=tuple(keys))


_LOADED: dict[tuple, SigningKeys] = {}


def signing_keys_for(ehr: EhrRegistration, environ: Mapping[str, str] | None = None) -> SigningKeys:
    """:func:`load_signing_keys` cached per registration and key paths (a changed path is read anew).

    Raises :class:`~app.config.ConfigError` (see :func:`load_signing_keys`) or
    ``ValueError`` for a registration that is not ``private_key_jwt``.
    """
    environ = os.environ if environ is None else environ
    settings = ehr.private_key_jwt
    if settings is None:
        raise ValueError(f"{ehr.name}: not a private_key_jwt registration")
    cache_key = (ehr, tuple(environ.get(name, "") for name in settings.key_file_envs))
    keys = _LOADED.get(cache_key)
    if keys is None:
        keys = load_signing_keys(ehr, environ)
        _LOADED[cache_key] = keys
    return keys


def published_jwks(all_keys: Iterable[SigningKeys]) -> dict:
    """The app's JWK Set (RFC 7517 §5): every registration's public keys, each ``kid`` once."""
    seen: dict[str, dict] = {}
    for keys in all_keys:
        for jwk in keys.public_jwks():
            seen.setdefault(jwk["kid"], jwk)
    return {"keys": list(seen.values())}


class SmartPrivateKeyJWT(PrivateKeyJWT):
    """authlib's ``private_key_jwt`` client auth with SMART's constraints: ``kid`` and ``typ`` in the header,
    ``exp`` :data:`ASSERTION_LIFETIME_SECONDS` after ``iat``, a fresh ``jti`` per assertion (authlib's)."""

    def __init__(self, keys: SigningKeys, token_endpoint: str):
        super().__init__(token_endpoint=token_endpoint, alg=keys.alg)
        self.keys = keys

    def sign(self, auth, token_endpoint):
        """The signed assertion (compact JWS) for ``auth.client_id`` and ``token_endpoint``."""
        return private_key_jwt_sign(self.keys.signing_key, client_id=auth.client_id, token_endpoint=token_endpoint,
                                    alg=self.keys.alg, header={"kid": self.keys.kid, "typ": "JWT"},
                                    expires_in=ASSERTION_LIFETIME_SECONDS)
