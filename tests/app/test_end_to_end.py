"""The app against the real sandbox EHR over HTTP: EHR launch, standalone launch, refresh, faults.

The sandbox runs as a live server on a free loopback port (``localhost``);
the app is driven with Flask-Testing's client; the browser's hops to the
EHR's authorize endpoint are made with ``requests``.
"""

from __future__ import annotations

import re
import time

import pydicom
import requests
from flask_testing import TestCase
from pydicom.data import get_testdata_file

from app import create_app
from sandbox import create_app as create_sandbox
from tests.support import live_server, query_of

APP_ORIGIN = "http://127.0.0.1:8000"  # the app is driven in-process; only its registered URLs use this


class SandboxTestCase(TestCase):
    """Starts one sandbox EHR per test class; ``create_app`` builds the app registered with it."""

    sandbox_config: dict = {}

    @classmethod
    def setUpClass(cls):
        cls._server = live_server(lambda port: create_sandbox({
            "PUBLIC_BASE_URL": f"http://localhost:{port}", "APP_ORIGIN": APP_ORIGIN, **cls.sandbox_config}))
        cls.port = cls._server.__enter__()
        cls.ehr_base = f"http://localhost:{cls.port}"
        cls.iss = f"{cls.ehr_base}/fhir"

    @classmethod
    def tearDownClass(cls):
        cls._server.__exit__(None, None, None)

    client_registration: dict = {"client_id": "imaging-app"}

    def create_app(self):
        import tempfile
        self._tmp = tempfile.TemporaryDirectory()
        registration = {
            "app": {"launch_uri": f"{APP_ORIGIN}/launch", "redirect_uri": f"{APP_ORIGIN}/callback"},
            "ehrs": [{"name": "Sandbox", "iss": self.iss, "scopes": ["online_access"],
                      "frame_ancestors": [self.ehr_base], **self.client_registration}],
            "viewer": {"base_url": f"{self.ehr_base}/IHEInvokeImageDisplay", "viewerType": "IHE_BIR"},
            "fhir": {"page_size": 100, "max_pages": 20, "connect_timeout": 2, "read_timeout": 10},
        }
        return create_app(registration, secret_key="e2e", store_path=f"{self._tmp.name}/launches.sqlite3")

    def tearDown(self):
        self._tmp.cleanup()

    # -- helpers ---------------------------------------------------------------------------------
    def ehr_launch(self, patient: str, **options) -> dict:
        response = requests.post(f"{self.ehr_base}/ehr/api/launches", json={"patient": patient, **options}, timeout=10)
        self.assertEqual(response.status_code, 201, response.text)
        return response.json()

    def follow_authorize(self, authorize_url: str, form: dict | None = None) -> str:
        """What the browser does at the EHR: returns the redirect back to the app (``/callback?...``)."""
        response = requests.get(authorize_url, allow_redirects=False, timeout=10)
        if form is not None:  # standalone: the patient picker
            self.assertEqual(response.status_code, 200, response.text)
            action, fields = _picker_form(response.text, authorize_url)
            fields.update(form)
            response = requests.post(action, data=fields, allow_redirects=False, timeout=10)
        self.assertIn(response.status_code, (302, 303), response.text[:500])
        location = response.headers["Location"]
        self.assertTrue(location.startswith(f"{APP_ORIGIN}/callback?"), location)
        return location[len(APP_ORIGIN):]

    def launch_to_list(self, patient: str, **options):
        launch = self.ehr_launch(patient, **options)
        self.assertEqual(launch["iss"], self.iss)
        started = self.client.get(launch["launch_url"][len(f"{APP_ORIGIN}"):])
        self.assertEqual(started.status_code, 303)
        callback = self.client.get(self.follow_authorize(started.headers["Location"]))
        if callback.status_code != 303:
            return callback
        return self.client.get(callback.headers["Location"])


def _picker_form(html: str, base_url: str) -> tuple[str, dict]:
    """The picker's form action and its hidden fields (a tiny parse, enough for the sandbox's own page)."""
    from html.parser import HTMLParser
    from urllib.parse import urljoin

    class Parser(HTMLParser):
        action, fields = None, {}

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "form" and self.action is None:
                self.action = attrs.get("action") or base_url
            if tag == "input" and attrs.get("type") == "hidden" and attrs.get("name"):
                self.fields[attrs["name"]] = attrs.get("value", "")

    parser = Parser()
    parser.fields = {}
    parser.feed(html)
    return urljoin(base_url, parser.action), parser.fields


def _ids(page: str) -> list[str]:
    return re.findall(r'data-study-id="([^"]+)"', page)


def _uids(page: str) -> list[str]:
    return re.findall(r"studyUID=([0-9.]+)&amp;viewerType", page)


class EhrLaunchTest(SandboxTestCase):
    def test_ehr_launch_lists_the_patients_studies_newest_first(self):
        response = self.launch_to_list("pt-1001")
        self.assert200(response)
        page = response.get_data(as_text=True)
        ct_uid = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True).StudyInstanceUID
        self.assertIn(ct_uid, _uids(page))
        dates = re.findall(r'<time class="date" datetime="([^"]*)"', page)
        self.assertEqual(dates, sorted(dates, reverse=True))
        self.assertIn('class="banner"', page)

    def test_all_imaging_link_is_a_patient_request_the_display_accepts(self):
        page = self.launch_to_list("pt-1001").get_data(as_text=True)
        url = re.search(r'id="all-imaging" class="study-link-all" href="([^"]+)"', page).group(1).replace("&amp;", "&")
        self.assertIn("requestType=PATIENT&patientID=M0041001%5E%5E%5E%26", url)
        display = requests.get(url, timeout=10)
        self.assertEqual(display.status_code, 200)
        self.assertGreaterEqual(display.text.count(".png"), 8)

    def test_authorize_redirect_carries_aud_launch_and_pkce(self):
        launch = self.ehr_launch("pt-1002")
        started = self.client.get(launch["launch_url"][len(APP_ORIGIN):])
        params = query_of(started.headers["Location"])
        self.assertEqual(params["aud"], self.iss)
        self.assertEqual(params["launch"], launch["launch"])
        self.assertEqual(params["code_challenge_method"], "S256")
        self.assertEqual(params["scope"], "launch patient/ImagingStudy.rs patient/Patient.rs online_access")

    def test_patient_with_exactly_one_study(self):
        page = self.launch_to_list("pt-1002").get_data(as_text=True)
        self.assertEqual(len(_ids(page)), 1)

    def test_patient_without_studies_says_so(self):
        response = self.launch_to_list("pt-1004")
        self.assert200(response)
        self.assertIn("No imaging studies found for this patient.", response.get_data(as_text=True))

    def test_250_studies_are_all_fetched_shown_200_then_the_rest(self):
        response = self.launch_to_list("pt-1003")
        page = response.get_data(as_text=True)
        ids = _ids(page)
        self.assertEqual(len(ids), 200)
        self.assertIn('<span class="count" id="study-count">250</span>', page)
        self.assertIn("Show 50 older studies", page)
        self.assertNotIn("List incomplete", page)
        more = re.search(r'<a id="show-older" href="([^"]+)"', page).group(1).replace("&amp;", "&")
        page = self.client.get(more).get_data(as_text=True)
        all_ids = _ids(page)
        self.assertEqual(len(all_ids), 250)
        self.assertEqual(len(set(all_ids)), 250)
        self.assertEqual(all_ids[:200], ids)
        self.assertNotIn('id="show-older"', page)
        lid = re.search(r'data-launch-id="([^"]+)"', page).group(1)
        oldest = all_ids[-1]
        accession = re.search(rf'data-study-id="{oldest}"[^>]*data-text="[^"]*?(a\d+)', page)
        filtered = self.client.get(f"/l/{lid}/", query_string={"q": accession.group(1)}).get_data(as_text=True)
        self.assertEqual(_ids(filtered), [oldest])  # the server-side filter searches all 250

    def test_mixed_patient_marks_flags_and_disables_viewer_without_uid(self):
        page = self.launch_to_list("pt-1005").get_data(as_text=True)
        self.assertIn("Cancelled", page)
        self.assertIn("Entered in error", page)
        self.assertIn("Viewer unavailable: No Study Instance UID recorded for this study", page)

    def test_official_examples_patient(self):
        page = self.launch_to_list("pt-1006").get_data(as_text=True)
        self.assertEqual(set(_ids(page)), {"example", "example-xr"})
        self.assertIn("2.16.124.113543.6003.1154777499.30246.19789.3503430046", _uids(page))

    def test_preselected_study_opens_in_viewer_and_viewer_shows_pixels(self):
        response = self.launch_to_list("pt-1001")
        first_id = _ids(response.get_data(as_text=True))[0]
        response = self.launch_to_list("pt-1001", study=first_id)
        page = response.get_data(as_text=True)
        match = re.search(r'<iframe id="viewer-frame"[^>]*src="([^"]+)"', page)
        self.assertIsNotNone(match)
        viewer_url = match.group(1).replace("&amp;", "&")
        self.assertTrue(viewer_url.startswith(f"{self.ehr_base}/IHEInvokeImageDisplay?requestType=STUDY&studyUID="))
        display = requests.get(viewer_url, timeout=10)
        self.assertEqual(display.status_code, 200)
        image_path = re.search(r'src="(/IHEInvokeImageDisplay/[^"]+\.png[^"]*)"', display.text)
        self.assertIsNotNone(image_path, display.text[:1000])
        png = requests.get(self.ehr_base + image_path.group(1).replace("&amp;", "&"), timeout=10)
        self.assertEqual(png.headers["Content-Type"], "image/png")
        self.assertGreater(len(png.content), 500)


class FaultsTest(SandboxTestCase):
    def test_denied(self):
        response = self.launch_to_list("pt-1001", faults={"deny": True})
        self.assert403(response)
        self.assertIn("Access was denied in the EHR", response.get_data(as_text=True))

    def test_narrow_scope(self):
        response = self.launch_to_list("pt-1001", faults={"narrow_scope": True})
        self.assert403(response)
        self.assertIn("The EHR did not grant access to imaging studies", response.get_data(as_text=True))

    def test_no_patient(self):
        response = self.launch_to_list("pt-1001", faults={"no_patient": True})
        self.assert400(response)
        self.assertIn("This launch carried no patient", response.get_data(as_text=True))

    def test_expired_token_with_refresh_recovers(self):
        response = self.launch_to_list("pt-1002", faults={"expired_token": True})
        self.assert200(response)
        self.assertEqual(len(_ids(response.get_data(as_text=True))), 1)

    def test_expired_token_with_failing_refresh_asks_to_relaunch(self):
        response = self.launch_to_list("pt-1002", faults={"expired_token": True, "refresh_fails": True})
        self.assert401(response)
        self.assertIn("Your session has expired", response.get_data(as_text=True))

    def test_reused_launch_is_refused_by_the_ehr(self):
        launch = self.ehr_launch("pt-1002")
        path = launch["launch_url"][len(APP_ORIGIN):]
        first = self.client.get(path)
        self.client.get(self.follow_authorize(first.headers["Location"]))
        second = self.client.get(path)
        callback = self.client.get(self.follow_authorize(second.headers["Location"]))
        self.assertEqual(callback.status_code, 502)
        self.assertIn("The EHR refused the sign-in request", callback.get_data(as_text=True))


class ShortTokenTest(SandboxTestCase):
    sandbox_config = {"ACCESS_TOKEN_LIFETIME": 11}

    def test_token_is_refreshed_when_it_expires(self):
        response = self.launch_to_list("pt-1002")
        self.assert200(response)
        lid = re.search(r'data-launch-id="([^"]+)"', response.get_data(as_text=True)).group(1)
        time.sleep(1.2)  # 11 s lifetime - 10 s leeway: expired for the app
        again = self.client.get(f"/l/{lid}/?refresh=1")
        self.assert200(again)
        self.assertEqual(len(_ids(again.get_data(as_text=True))), 1)


class StandaloneLaunchTest(SandboxTestCase):
    def test_standalone_launch_with_patient_picker(self):
        start = self.client.get("/")
        self.assertIn(self.iss, start.get_data(as_text=True))
        started = self.client.get("/launch", query_string={"iss": self.iss})
        params = query_of(started.headers["Location"])
        self.assertEqual(params["aud"], self.iss)
        self.assertTrue(params["scope"].startswith("launch/patient "))
        callback_path = self.follow_authorize(started.headers["Location"], form={"patient": "pt-1002"})
        callback = self.client.get(callback_path)
        self.assertEqual(callback.status_code, 303)
        page = self.client.get(callback.headers["Location"]).get_data(as_text=True)
        self.assertEqual(len(_ids(page)), 1)


class ConfidentialClientTest(SandboxTestCase):
    client_registration = {"client_id": "imaging-app-confidential", "client_secret_env": "E2E_IMAGING_SECRET"}

    def create_app(self):
        from unittest import mock
        patcher = mock.patch.dict("os.environ", {"E2E_IMAGING_SECRET": "sandbox-secret"})
        patcher.start()
        self.addCleanup(patcher.stop)
        return super().create_app()

    def test_confidential_client_authenticates_with_client_secret_basic(self):
        response = self.launch_to_list("pt-1002")
        self.assert200(response)
        self.assertEqual(len(_ids(response.get_data(as_text=True))), 1)


class TwoPatientsTest(SandboxTestCase):
    def test_two_launches_in_one_cookie_jar_keep_their_patients(self):
        page_a = self.launch_to_list("pt-1002")
        page_b = self.launch_to_list("pt-1006")
        lid_a = re.search(r'data-launch-id="([^"]+)"', page_a.get_data(as_text=True)).group(1)
        lid_b = re.search(r'data-launch-id="([^"]+)"', page_b.get_data(as_text=True)).group(1)
        for _ in range(2):
            a = self.client.get(f"/l/{lid_a}/?refresh=1").get_data(as_text=True)
            b = self.client.get(f"/l/{lid_b}/?refresh=1").get_data(as_text=True)
            self.assertIn('data-patient-id="pt-1002"', a)
            self.assertEqual(_ids(a), ["is-1002-ct"])
            self.assertIn('data-patient-id="pt-1006"', b)
            self.assertEqual(set(_ids(b)), {"example", "example-xr"})
