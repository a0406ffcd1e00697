"""EHR screens and JSON launch API."""

from sandbox import create_app


def test_patient_list(sandbox_client):
    response = sandbox_client.get("/ehr")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for patient_id in ("pt-1001", "pt-1002", "pt-1003", "pt-1004", "pt-1005", "pt-1006"):
        assert f"/ehr/patients/{patient_id}" in html


def test_chart_embeds_fresh_launch_each_view(sandbox_client, sandbox_app):
    launches = []
    for _ in range(2):
        response = sandbox_client.get("/ehr/patients/pt-1001")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        src = html.split('<iframe class="app-frame" src="')[1].split('"')[0].replace("&amp;", "&")
        assert src.startswith("http://127.0.0.1:8000/launch?iss=http%3A%2F%2Flocalhost%3A8800%2Ffhir&launch=")
        launches.append(src.rsplit("launch=", 1)[1])
        csp = response.headers["Content-Security-Policy"]
        assert "frame-src 'self' http://127.0.0.1:8000" in csp
    assert launches[0] != launches[1]
    context = sandbox_app.extensions["sandbox"].launches.peek(launches[1])
    assert context.patient == "pt-1001" and context.study is None


def test_chart_form_sets_study_and_faults(sandbox_client, sandbox_app):
    response = sandbox_client.post("/ehr/patients/pt-1001?tab=imaging", data={
        "study": "is-1001-mr", "need_patient_banner": ["0", "1"], "deny": "1", "delay_ms": "25"})
    html = response.get_data(as_text=True)
    launch = html.split('<iframe class="app-frame" src="')[1].split('"')[0].rsplit("launch=", 1)[1]
    context = sandbox_app.extensions["sandbox"].launches.peek(launch)
    assert context.study == "is-1001-mr" and context.need_patient_banner is True
    assert context.faults.deny is True and context.faults.delay_ms == 25 and context.faults.no_patient is False
    unchecked = sandbox_client.post("/ehr/patients/pt-1001", data={"need_patient_banner": "0"}).get_data(as_text=True)
    launch = unchecked.split('<iframe class="app-frame" src="')[1].split('"')[0].rsplit("launch=", 1)[1]
    assert sandbox_app.extensions["sandbox"].launches.peek(launch).need_patient_banner is False


def test_new_window_launch_redirects(sandbox_client, sandbox_app):
    response = sandbox_client.get("/ehr/patients/pt-1002/launch?study=is-1002-ct")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("http://127.0.0.1:8000/launch?iss=")
    context = sandbox_app.extensions["sandbox"].launches.peek(location.rsplit("launch=", 1)[1])
    assert context.patient == "pt-1002" and context.study == "is-1002-ct"


def test_summary_tab_lists_studies(sandbox_client):
    html = sandbox_client.get("/ehr/patients/pt-1005?tab=summary").get_data(as_text=True)
    assert "entered-in-error" in html and "<iframe" not in html


def test_unknown_patient_chart_404(sandbox_client):
    assert sandbox_client.get("/ehr/patients/pt-0000").status_code == 404


def test_smart_style(sandbox_client):
    response = sandbox_client.get("/ehr/smart-style.json")
    assert response.status_code == 200 and response.get_json()["color_highlight"].startswith("#")


def test_app_launch_url_and_extra_history_config():
    app = create_app({"APP_LAUNCH_URL": "http://127.0.0.1:9000/smart/launch?x=1",
                      "EXTRA_HISTORIES": {"pt-2001": 1000}, "TESTING": True})
    client = app.test_client()
    launch = client.post("/ehr/api/launches", json={"patient": "pt-2001"}).get_json()
    assert launch["launch_url"].startswith("http://127.0.0.1:9000/smart/launch?x=1&iss=")
    assert len(app.extensions["sandbox"].dataset.patient("pt-2001").studies) == 1000


def test_env_config(monkeypatch):
    monkeypatch.setenv("SANDBOX_PUBLIC_BASE_URL", "http://ehr.test:9999")
    monkeypatch.setenv("SANDBOX_EXTRA_HISTORIES", "pt-3001:5")
    app = create_app({"TESTING": True})
    settings = app.extensions["sandbox"].config
    assert settings["PUBLIC_BASE_URL"] == "http://ehr.test:9999"
    assert settings["EXTRA_HISTORIES"] == {"pt-3001": 5}
