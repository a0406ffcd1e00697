"""DiagnosticReports beside the studies: reading (STU3/R4/R5), linking, sanitising, and the sandbox end to end."""

from __future__ import annotations

import base64
import re

import pytest

from app.fhir.imaging import summarize
from app.fhir.reports import pdf_bytes, reports_by_study, sanitise_html, summarize_report
from app.web.presenter import age_text, dicom_words, prior_of, relative_age
import responses

from tests.app.conftest import MockedEhr, good_token
from tests.app.test_launch_lifecycle import _routes, _start
from tests.support import ISS, PATIENT, searchset
from tests.app.test_end_to_end import SandboxDriver, _driver, sandbox_base  # noqa: F401 - fixture reused

ACSN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]}


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _study(study_id, accession=None, started="2024-01-01T00:00:00Z", modality="CT", site=None):
    identifiers = [{"system": "urn:dicom:uid", "value": f"urn:oid:2.25.{abs(hash(study_id)) % 10**12}"}]
    if accession:
        identifiers.append({"type": ACSN, "value": accession})
    series = {"uid": "2.25.1", "modality": {"code": modality}}
    if site:
        series["bodySite"] = {"display": site}
    return summarize({"resourceType": "ImagingStudy", "id": study_id, "status": "available", "started": started,
                      "identifier": identifiers, "modality": [{"code": modality}], "series": [series]})


def test_r4_report_with_plain_text_and_performer():
    report = summarize_report({
        "resourceType": "DiagnosticReport", "id": "dr-1", "status": "final", "issued": "2024-01-02T10:05:00Z",
        "imagingStudy": [{"reference": "ImagingStudy/is-1"}], "performer": [{"display": "Dr. Rossi"}],
        "conclusion": "Normal.", "presentedForm": [{"contentType": "text/plain; charset=utf-8", "data": _b64("Line 1")}]})
    assert (report.status_label, report.date, report.performers, report.text, report.study_refs) == \
        ("Final", "2024-01-02 10:05", ("Dr. Rossi",), "Line 1", ("is-1",))


def test_stu3_performer_actor_and_r5_study_reference():
    stu3 = summarize_report({"resourceType": "DiagnosticReport", "status": "amended",
                             "performer": [{"actor": {"display": "Dr. A"}}],
                             "imagingStudy": [{"reference": "http://ehr.example/fhir/ImagingStudy/is-9/_history/2"}]})
    r5 = summarize_report({"resourceType": "DiagnosticReport", "status": "corrected",
                           "study": [{"reference": "ImagingStudy/is-5"}]})
    assert (stu3.performers, stu3.study_refs, stu3.status_label) == (("Dr. A",), ("is-9",), "Amended")
    assert (r5.study_refs, r5.status_label) == (("is-5",), "Corrected")


def test_html_is_cleaned_of_scripts_handlers_and_links():
    html = sanitise_html('<p onclick="x()">Ok <b>bold</b></p><script>alert(1)</script>'
                         '<a href="javascript:alert(2)">l</a><img src=x onerror=y><style>p{}</style>')
    assert html == "<p>Ok <b>bold</b></p>l"


def test_linking_by_reference_then_accession_newest_wins_and_errors_left_out():
    studies = [_study("is-1", "A1"), _study("is-2", "A2"), _study("is-3", "A3")]
    reports = [summarize_report(r) for r in (
        {"id": "old", "status": "preliminary", "issued": "2024-01-01", "imagingStudy": [{"reference": "ImagingStudy/is-1"}]},
        {"id": "new", "status": "final", "issued": "2024-01-05", "imagingStudy": [{"reference": "ImagingStudy/is-1"}]},
        {"id": "acc", "status": "final", "basedOn": [{"identifier": {"type": ACSN, "value": "A2"}}]},
        {"id": "err", "status": "entered-in-error", "identifier": [{"type": ACSN, "value": "A3"}]})]
    linked = reports_by_study(studies, reports)
    assert {k: v.id for k, v in linked.items()} == {"is-1": "new", "is-2": "acc"}


def test_pdf_must_be_a_pdf():
    resource = {"presentedForm": [{"contentType": "text/plain", "data": _b64("x")},
                                  {"contentType": "application/pdf", "data": _b64(b"%PDF-1.4 ...")},
                                  {"contentType": "application/pdf", "data": _b64(b"<html>")}]}
    assert (pdf_bytes(resource, 0), pdf_bytes(resource, 1), pdf_bytes(resource, 2), pdf_bytes(resource, 7)) == \
        (None, b"%PDF-1.4 ...", None, None)


def test_prior_same_modality_and_body_site():
    current = _study("is-c", started="2024-05-01T00:00:00Z", site="CHEST")
    studies = [current, _study("is-head", started="2024-04-01T00:00:00Z", site="HEAD"),
               _study("is-old", started="2020-01-01T00:00:00Z", site="CHEST"),
               _study("is-prior", started="2023-01-01T00:00:00Z", site="chest"),
               _study("is-mr", started="2024-04-20T00:00:00Z", modality="MR", site="CHEST"),
               _study("is-later", started="2024-06-01T00:00:00Z", site="CHEST")]
    assert prior_of(current, studies).id == "is-prior"
    assert prior_of(studies[2], studies) is None


def test_words_and_ages():
    from datetime import datetime, timezone
    now = datetime(2024, 6, 10, tzinfo=timezone.utc)
    assert dicom_words("abdomen^liver") == "abdomen, liver"
    assert dicom_words("WHITFIELD^MARGARET^ANN") == "WHITFIELD, MARGARET, ANN"
    assert [relative_age(datetime(*d, tzinfo=timezone.utc), now) for d in
            ((2024, 6, 10), (2024, 6, 7), (2024, 5, 1), (2023, 12, 1), (2004, 1, 19))] == \
        ["today", "3 d ago", "5 wk ago", "6 mo ago", "20 y ago"]
    assert age_text(_study("x", started="2004-01-19T07:27:30-05:00"), now, "1958-03-14") == "20 y ago · age 45"


@pytest.fixture
def ehr_mocked(app):
    """The mocked EHR of ``tests/app/conftest.py`` (as its ``ehr`` fixture; that name is the sandbox here)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield MockedEhr(app.test_client(), mock)


@pytest.fixture
def ehr(sandbox_base, tmp_path) -> SandboxDriver:  # noqa: F811
    return _driver(sandbox_base, tmp_path)


def _row(page: str, study_id: str) -> str:
    return re.search(rf'<li class="study[^"]*" data-study-id="{study_id}".*?</li>', page, re.S).group(0)


def test_sandbox_reports_show_in_rows_and_beside_the_viewer(ehr):
    response = ehr.launch_to_list("pt-1001", study="is-1001-nm-bone")
    page = response.get_data(as_text=True)
    assert "Report: Final" in _row(page, "is-1001-ct")
    assert "Report: Preliminary" in _row(page, "is-1001-mr")
    assert "Report: Amended" in _row(page, "is-1001-us-rgb")
    assert "Report: Corrected" in _row(page, "is-1001-mr-abdomen")
    assert "Report: Final" in _row(page, "is-1001-us-doppler")  # linked by accession (basedOn) only
    assert "Report: Final" in _row(page, "is-1001-mr-prior")  # linked by accession (identifier) only
    assert "No report" in _row(page, "is-1001-rtdose")
    nm = re.search(r'<article class="report[^"]*" data-report-for="is-1001-nm-bone".*?</article>', page, re.S).group(0)
    assert "hidden" not in nm.split(">")[0]
    assert "<h3>NM whole body bone scan</h3><p>Symmetric uptake. <b>No focal lesions.</b></p>" in nm
    assert "<script" not in page.split('<section class="reports"')[1].split("</section>")[0]
    assert "onclick" not in page
    assert "Dr. Elena Rossi, Radiology" in nm
    assert "Conclusion: No scintigraphic evidence of osseous metastases." in nm
    # the PDF, through the launch-bound route
    pdf_url = re.search(r'href="(/l/[^"]+/reports/dr-1001-mr-abdomen\.pdf)"', page).group(1)
    pdf = ehr.client.get(pdf_url)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.data.startswith(b"%PDF-1.4") and b"hepatic cyst" in pdf.data
    assert ehr.client.get(pdf_url.replace("dr-1001-mr-abdomen", "dr-1001-ct")).status_code == 404


def test_without_the_report_scope_says_so_and_asks_nothing(ehr_mocked):
    """A grant without DiagnosticReport: the list says reports are not available; no report search is sent."""
    _routes(ehr_mocked)
    page = ehr_mocked.client.get(_start(ehr_mocked, good_token())).get_data(as_text=True)
    assert "Reports are not available to this app" in page
    assert "Report: " not in page and "No report" not in page
    assert not [c for c in ehr_mocked.mock.calls if "DiagnosticReport" in c.request.url]


def test_with_the_report_scope_the_search_runs_and_rows_say_no_report(ehr_mocked):
    _routes(ehr_mocked)
    ehr_mocked.mock.get(f"{ISS}/DiagnosticReport", json=searchset([]), content_type="application/fhir+json")
    token = good_token(scope="launch patient/ImagingStudy.rs patient/Patient.rs patient/DiagnosticReport.rs")
    page = ehr_mocked.client.get(_start(ehr_mocked, token)).get_data(as_text=True)
    assert page.count("No report</span>") == 2
    assert [c.request.url for c in ehr_mocked.mock.calls if "DiagnosticReport" in c.request.url] == \
        [f"{ISS}/DiagnosticReport?patient={PATIENT}&_count=50"]


def test_search_covers_series_body_sites_and_human_dates():
    from app.web.search import StudyQuery

    study = _study("a", started="2004-08-26T10:00:00Z", site="abdomen^liver")
    assert [len(StudyQuery(text=t).select([study])) for t in ("Aug 2004", "august", "liver abdomen", "Sep 2004")] == \
        [1, 1, 1, 0]
