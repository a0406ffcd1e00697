"""SMART discovery documents (SMART App Launch 2.2 §Conformance; FHIR R4 §CapabilityStatement;
OpenID Connect Discovery 1.0 §3; RFC 9207 §3).

The issuer (SMART ``issuer``, OIDC ``issuer``, id_token ``iss``, RFC 9207 ``iss``) is the EHR
origin ``PUBLIC_BASE_URL``; ``jwks_uri`` = ``PUBLIC_BASE_URL + /oauth2/jwks``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app, has_app_context

from .client_auth import ASSERTION_ALGORITHMS
from .oidc import ID_TOKEN_ALG
from .scopes import NON_CLINICAL_SCOPES

CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "context-banner",
    "context-style",
    "permission-patient",
    "permission-offline",
    "permission-v1",
    "permission-v2",
]

#: Clinical scopes advertised (others in the grammar are accepted too).
ADVERTISED_CLINICAL_SCOPES = [
    "patient/ImagingStudy.rs",
    "patient/ImagingStudy.read",
    "patient/Patient.rs",
    "patient/Patient.read",
    "patient/Endpoint.r",
    "patient/Endpoint.read",
    "patient/DiagnosticReport.rs",
    "patient/DiagnosticReport.read",
    "patient/*.rs",
    "patient/*.read",
    "user/ImagingStudy.rs",
    "user/ImagingStudy.read",
    "user/*.rs",
    "user/*.read",
    "patient/Encounter.r",
    "patient/Encounter.read",
    "user/Practitioner.r",
    "user/Practitioner.read",
]

TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "none", "private_key_jwt"]
ID_TOKEN_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser"]

OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def _settings(settings: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if settings is None and has_app_context() and "sandbox" in current_app.extensions:
        settings = current_app.extensions["sandbox"].config
    return settings or {}


def smart_configuration(public_base_url: str, settings: Mapping[str, Any] | None = None) -> dict:
    """``/.well-known/smart-configuration`` body; *public_base_url* has no trailing slash.

    *settings* (default: the current sandbox app's config) decides
    ``authorization_response_iss_parameter_supported`` (``AUTHORIZATION_RESPONSE_ISS``).
    """
    body = {
        "issuer": public_base_url,
        "jwks_uri": public_base_url + "/oauth2/jwks",
        "authorization_endpoint": public_base_url + "/oauth2/authorize",
        "token_endpoint": public_base_url + "/oauth2/token",
        "token_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "scopes_supported": sorted(NON_CLINICAL_SCOPES) + ADVERTISED_CLINICAL_SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALG],
        "capabilities": CAPABILITIES,
    }
    if _settings(settings).get("AUTHORIZATION_RESPONSE_ISS", True):
        body["authorization_response_iss_parameter_supported"] = True
    return body


def openid_configuration(settings: Mapping[str, Any]) -> dict:
    """``{issuer}/.well-known/openid-configuration`` (OIDC Discovery 1.0 §3)."""
    base = settings["PUBLIC_BASE_URL"]
    body = {
        "issuer": base,
        "authorization_endpoint": base + "/oauth2/authorize",
        "token_endpoint": base + "/oauth2/token",
        "jwks_uri": base + "/oauth2/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALG],
        "scopes_supported": sorted(NON_CLINICAL_SCOPES) + ADVERTISED_CLINICAL_SCOPES,
        "claims_supported": ID_TOKEN_CLAIMS,
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "code_challenge_methods_supported": ["S256"],
    }
    if settings.get("AUTHORIZATION_RESPONSE_ISS", True):
        body["authorization_response_iss_parameter_supported"] = True
    return body


def capability_statement(public_base_url: str) -> dict:
    """R4 CapabilityStatement with the SMART ``oauth-uris`` extension in ``rest[0].security``."""
    fhir_base_url = public_base_url + "/fhir"
    search_params = [
        {"name": "patient", "type": "reference"},
        {"name": "subject", "type": "reference"},
        {"name": "started", "type": "date"},
        {"name": "modality", "type": "token"},
        {"name": "status", "type": "token"},
        {"name": "_count", "type": "number"},
        {"name": "_sort", "type": "string", "documentation": "started or -started (default -started)"},
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-01-01",
        "publisher": "SMART Imaging Sandbox EHR",
        "kind": "instance",
        "software": {"name": "SMART Imaging Sandbox EHR", "version": "1.0"},
        "implementation": {"description": "Sandbox EHR for SMART imaging apps", "url": fhir_base_url},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": True,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [
                        {
                            "url": OAUTH_URIS_EXTENSION,
                            "extension": [
                                {"url": "authorize", "valueUri": public_base_url + "/oauth2/authorize"},
                                {"url": "token", "valueUri": public_base_url + "/oauth2/token"},
                            ],
                        }
                    ],
                },
                "resource": [
                    {"type": "Patient", "interaction": [{"code": "read"}]},
                    {
                        "type": "ImagingStudy",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": search_params,
                    },
                    {"type": "Endpoint", "interaction": [{"code": "read"}]},
                    {"type": "DiagnosticReport", "interaction": [{"code": "read"}, {"code": "search-type"}],
                     "searchParam": [{"name": "patient", "type": "reference"}, {"name": "subject", "type": "reference"}]},
                    {"type": "Practitioner", "interaction": [{"code": "read"}]},
                    {"type": "Encounter", "interaction": [{"code": "read"}]},
                ],
            }
        ],
    }
