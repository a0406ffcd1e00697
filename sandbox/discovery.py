"""SMART discovery documents (SMART App Launch 2.2 §Conformance; FHIR R4 §CapabilityStatement)."""

from __future__ import annotations

from .scopes import NON_CLINICAL_SCOPES

CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "context-ehr-patient",
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
    "patient/*.rs",
    "patient/*.read",
    "user/ImagingStudy.rs",
    "user/ImagingStudy.read",
    "user/*.rs",
    "user/*.read",
]

OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def smart_configuration(public_base_url: str) -> dict:
    """``/.well-known/smart-configuration`` body; *public_base_url* has no trailing slash."""
    return {
        "issuer": public_base_url,
        "authorization_endpoint": public_base_url + "/oauth2/authorize",
        "token_endpoint": public_base_url + "/oauth2/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "scopes_supported": sorted(NON_CLINICAL_SCOPES) + ADVERTISED_CLINICAL_SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    }


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
                ],
            }
        ],
    }
