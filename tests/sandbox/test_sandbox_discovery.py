"""Discovery: .well-known/smart-configuration and the CapabilityStatement."""


def test_smart_configuration(sandbox_client):
    response = sandbox_client.get("/fhir/.well-known/smart-configuration")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = response.get_json()
    assert body["issuer"] == "http://localhost:8800"
    assert body["authorization_endpoint"] == "http://localhost:8800/oauth2/authorize"
    assert body["token_endpoint"] == "http://localhost:8800/oauth2/token"
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert set(body["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert set(body["token_endpoint_auth_methods_supported"]) == {"none", "client_secret_basic", "private_key_jwt"}
    for capability in ("launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
                       "context-ehr-patient", "context-standalone-patient", "context-banner", "context-style",
                       "permission-patient", "permission-offline", "permission-v1", "permission-v2"):
        assert capability in body["capabilities"]
    assert {"launch", "launch/patient", "openid", "fhirUser", "offline_access", "online_access",
            "patient/ImagingStudy.rs"} <= set(body["scopes_supported"])


def test_metadata_has_oauth_uris(sandbox_client, smart):
    response = sandbox_client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.content_type == "application/fhir+json; charset=utf-8"
    body = response.get_json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    (extension,) = body["rest"][0]["security"]["extension"]
    assert extension["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    uris = {e["url"]: e["valueUri"] for e in extension["extension"]}
    assert uris == {"authorize": "http://localhost:8800/oauth2/authorize", "token": "http://localhost:8800/oauth2/token"}
    (imaging,) = [r for r in body["rest"][0]["resource"] if r["type"] == "ImagingStudy"]
    assert {p["name"] for p in imaging["searchParam"]} >= {"patient", "subject", "started", "modality", "status"}
    assert body["implementation"]["url"] == smart.fhir_base


def test_public_base_url_config_changes_every_url():
    from sandbox import create_app

    client = create_app({"PUBLIC_BASE_URL": "https://ehr.example.test/", "TESTING": True}).test_client()
    body = client.get("/fhir/.well-known/smart-configuration").get_json()
    assert body["token_endpoint"] == "https://ehr.example.test/oauth2/token"
    launch = client.post("/ehr/api/launches", json={"patient": "pt-1002"}).get_json()
    assert launch["iss"] == "https://ehr.example.test/fhir"
    assert launch["launch_url"].startswith("http://127.0.0.1:8000/launch?iss=https%3A%2F%2Fehr.example.test%2Ffhir&launch=")
