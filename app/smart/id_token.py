"""The user's identity: the OpenID Connect ``id_token`` of the code exchange, validated (OpenID Connect Core 1.0
§3.1.3.7 ID Token Validation; SMART App Launch 2.2 §Scopes for requesting identity data).

:func:`validate_id_token` checks, in this order (each failure is an
:class:`InvalidIdToken` naming the ``problem``):

1. a compact JWS of three parts (``malformed``), its header ``alg`` in
   :data:`ALLOWED_ALGORITHMS` before any key is looked at (``alg-not-allowed``:
   ``none``, every ``HS*`` and anything else; §3.1.3.7 step 6–8: no MAC with a
   public key);
2. the signature, with the key of header ``kid`` in the issuer's JWK Set
   (:class:`~app.smart.jwks.JwksCache`: an unknown ``kid`` refetches the set
   once) (``unknown-kid``, ``bad-signature``, ``keys-unavailable``);
3. claims (step 2–3, 9–11): ``iss`` equals the server's issuer exactly
   (``wrong-iss``), ``aud`` is or contains the client id and, with several
   audiences, ``azp`` is the client id (``wrong-aud``), ``exp`` in the future and
   ``iat`` not in the future, each with :data:`LEEWAY_SECONDS` (``expired``,
   ``issued-in-future``), ``sub`` present, ``nonce`` equal to the launch's
   (``nonce-mismatch``); a missing claim is ``missing-claim``.

The token itself is never logged or stored; only :class:`Identity` is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from joserfc import jws, jwt
from joserfc.errors import (BadSignatureError, ExpiredTokenError, InvalidClaimError, InvalidTokenError,
                            JoseError, MissingClaimError)
from joserfc.jwt import JWTClaimsRegistry

from .errors import SmartError
from .jwks import JwksCache, JwksUnavailable

ALLOWED_ALGORITHMS = ("RS256", "RS384", "ES256", "ES384")
"""Signature algorithms accepted for id_tokens (OIDC Core §15.1 requires RS256 support); never ``none`` or HMAC."""

LEEWAY_SECONDS = 60
MAX_ID_TOKEN_LENGTH = 16384
MAX_FHIR_USER_LENGTH = 2048


class InvalidIdToken(SmartError):
    """The token response's ``id_token`` fails OpenID Connect Core §3.1.3.7; ``problem`` names the check.

    ``problem``: ``"missing"``, ``"malformed"``, ``"alg-not-allowed"``, ``"unknown-kid"``, ``"bad-signature"``,
    ``"keys-unavailable"``, ``"wrong-iss"``, ``"wrong-aud"``, ``"expired"``, ``"issued-in-future"``,
    ``"nonce-mismatch"``, ``"missing-claim"``. The launch ends: its identity cannot be believed.
    """

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Identity:
    """Who signed in: ``issuer`` and ``subject`` (OIDC ``iss``/``sub``), ``fhir_user`` (the ``fhirUser`` claim,
    a relative or absolute FHIR reference to a Practitioner, Patient, RelatedPerson or Person; ``None`` when absent)."""

    issuer: str
    subject: str
    fhir_user: str | None = None


def validate_id_token(id_token: object, *, issuer: str, client_id: str, nonce: str | None, jwks: JwksCache,
                      jwks_uri: str | None, now: float | None = None) -> Identity:
    """Validate ``id_token`` for this launch and return the :class:`Identity` it asserts.

    ``issuer``: the authorization server's issuer (SMART discovery ``issuer``);
    ``client_id``: the registration's; ``nonce``: the one sent on the authorize
    request (``None``: none was sent, a ``nonce`` claim is then refused);
    ``jwks_uri``: from discovery, else found via ``{issuer}/.well-known/openid-configuration``;
    ``now``: epoch seconds. Raises :class:`InvalidIdToken`.
    """
    if not isinstance(id_token, str) or not id_token:
        raise InvalidIdToken("missing")
    if len(id_token) > MAX_ID_TOKEN_LENGTH or id_token.count(".") != 2:
        raise InvalidIdToken("malformed")
    try:
        header = jws.extract_compact(id_token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError):
        raise InvalidIdToken("malformed") from None
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise InvalidIdToken("alg-not-allowed")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidIdToken("malformed")
    try:
        uri = jwks.jwks_uri_for(issuer, jwks_uri)
        key_set = jwks.keys(uri, kid)
    except JwksUnavailable:
        raise InvalidIdToken("keys-unavailable") from None
    if kid is not None and not any(k.kid == kid for k in key_set.keys):
        raise InvalidIdToken("unknown-kid")
    try:
        token = jwt.decode(id_token, key_set, algorithms=list(ALLOWED_ALGORITHMS))
    except BadSignatureError:
        raise InvalidIdToken("bad-signature") from None
    except (JoseError, ValueError):
        raise InvalidIdToken("malformed") from None
    claims = token.claims
    registry = JWTClaimsRegistry(
        now=int(time.time() if now is None else now), leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer}, aud={"essential": True, "value": client_id},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True})
    try:
        registry.validate(claims)
    except MissingClaimError:
        raise InvalidIdToken("missing-claim") from None
    except ExpiredTokenError:
        raise InvalidIdToken("expired") from None
    except InvalidClaimError as exc:
        raise InvalidIdToken({"iss": "wrong-iss", "aud": "wrong-aud", "iat": "issued-in-future"}.get(
            exc.claim, "malformed")) from None
    except InvalidTokenError:
        raise InvalidIdToken("issued-in-future") from None
    except JoseError:
        raise InvalidIdToken("malformed") from None
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise InvalidIdToken("wrong-aud")
    if claims.get("nonce") != nonce:
        raise InvalidIdToken("nonce-mismatch")
    fhir_user = claims.get("fhirUser")
    if not (isinstance(fhir_user, str) and 0 < len(fhir_user) <= MAX_FHIR_USER_LENGTH and fhir_user.isprintable()):
        fhir_user = None
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise InvalidIdToken("missing-claim")
    return Identity(issuer=issuer, subject=subject[:255], fhir_user=fhir_user)
