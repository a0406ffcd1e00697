"""The study-list presenter as the template receives it (Flask-Testing: the template's context, not its HTML)."""

from __future__ import annotations

import responses
from flask_testing import TestCase

from app import create_app
from tests.app.conftest import MockedEhr, good_token
from tests.support import ISS, PATIENT, UID_A, UID_B, VIEWER, query_of, registration, searchset, study


class StudyListPageTest(TestCase):
    """Launches against a mocked EHR, then reads the ``page`` handed to ``studies.html``."""

    render_templates = True

    def create_app(self):
        import tempfile
        self._tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self._tmp.cleanup)
        return create_app(registration(), secret_key="presenter", store_path=f"{self._tmp.name}/s.sqlite3")

    def setUp(self):
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        self.mock.start()
        self.addCleanup(self.mock.stop)
        self.addCleanup(self.mock.reset)
        self.ehr = MockedEhr(self.client, self.mock)
        self.ehr.well_known()
        self.mock.get(f"{ISS}/Patient/{PATIENT}", json={"resourceType": "Patient", "id": PATIENT})
        self.mock.get(f"{ISS}/ImagingStudy", json=searchset([
            study("is-ct", UID_A, "2024-03-01T10:00:00Z", modality="CT", description="CT Head"),
            study("is-mr", UID_B, "2023-03-01T10:00:00Z", modality="MR", description="MR Knee"),
            study("is-none", None, "2022-03-01T10:00:00Z", modality="MR", description="MR Old")]))
        callback = self.ehr.authorized(good_token())
        self.list_url = callback.headers["Location"]

    def test_page_rows_selection_and_viewer_url(self):
        self.client.get(self.list_url, query_string={"study": ["is-mr", "is-ct", "is-mr", "unknown"]})
        self.assertTemplateUsed("studies.html")
        page = self.get_context_variable("page")
        self.assertEqual([r.study.id for r in page.rows], ["is-ct", "is-mr", "is-none"])
        self.assertEqual(page.rows[0].viewer_url, f"{VIEWER}?requestType=STUDY&studyUID={UID_A}&viewerType=IHE_BIR")
        self.assertIsNone(page.rows[2].viewer_url)
        self.assertEqual(page.selected_ids, ["is-mr", "is-ct"])  # order kept, duplicate dropped
        self.assertEqual(query_of(page.viewer_url)["studyUID"], f"{UID_B},{UID_A}")
        self.assertEqual((page.missing_selection, page.dropped_selection), (1, 0))
        self.assertEqual(page.all_modalities, ["CT", "MR"])
        self.assertTrue(page.complete)

    def test_filtered_page_is_not_complete_and_counts_matches(self):
        self.client.get(self.list_url, query_string={"modality": "MR", "q": "knee"})
        page = self.get_context_variable("page")
        self.assertEqual([r.study.id for r in page.rows], ["is-mr"])
        self.assertEqual((page.matching, page.more, page.complete), (1, 0, False))


def test_a_studys_own_allowlisted_viewer_is_used_and_mixed_comparisons_use_the_registered_one():
    from dataclasses import replace

    from app.config import ViewerSettings
    from app.fhir.imaging import summarize
    from app.fhir.study_list import StudyList
    from app.web.presenter import build_study_list_page
    from app.web.search import StudyQuery
    own = "https://pacs-b.example.org/IHEInvokeImageDisplay"
    a = replace(summarize(study("is-a", UID_A, "2024-03-01T10:00:00Z")), viewer_base_url=own)
    b = summarize(study("is-b", UID_B, "2023-03-01T10:00:00Z"))
    page = build_study_list_page(
        launch_id="L", patient_id=PATIENT, study_list=StudyList(studies=[a, b], banner=None), show_banner=False,
        viewer=ViewerSettings(base_url=VIEWER), query=StudyQuery(), requested_ids=["is-a", "is-b"], show=200,
        page_url="/l/L/")
    assert [r.viewer_url.split("?")[0] for r in page.rows] == [own, VIEWER]
    assert page.viewer_url.startswith(f"{VIEWER}?requestType=STUDY&studyUID={UID_A}%2C{UID_B}")


def test_the_prior_index_finds_what_a_full_scan_finds():
    import random
    from dataclasses import replace

    from app.fhir.imaging import summarize
    from app.web.presenter import PriorIndex
    rng = random.Random(7)
    studies = []
    for i in range(300):
        day = f"20{rng.randint(10, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00Z"
        status = rng.choice(["available"] * 8 + ["cancelled", "entered-in-error"])
        summary = summarize(study(f"is-{i}", f"2.25.{i}", day, modality=rng.choice(["CT", "MR", "US"]), status=status))
        studies.append(replace(summary, body_sites=tuple(rng.sample(["head", "chest", "knee"], rng.randint(0, 1)))))

    def full_scan(current):
        candidates = [o for o in studies if o.id != current.id and o.viewable and not o.status_flag
                      and o.started_sort < current.started_sort and current.modalities[0] in o.modalities
                      and not ({s for s in current.body_sites} and {s for s in o.body_sites}
                               and not set(current.body_sites) & set(o.body_sites))]
        return max(candidates, key=lambda o: o.started_sort, default=None)

    index = PriorIndex(studies)
    found = [(index.prior_of(s) or s).id for s in studies]
    expected = [(full_scan(s) or s).id for s in studies]
    assert found == expected and sum(a != s.id for a, s in zip(found, studies)) > 200
