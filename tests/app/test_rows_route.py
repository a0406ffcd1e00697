"""``GET /l/<id>/rows``: the rows appended to a list page (older pages loading in the background, "Show older"),
and the background loader's state in the list record (issue 14)."""

from __future__ import annotations

import json
import threading
import time

import pytest
import responses
from markupsafe import escape

from app.launches import study_lists
from tests.app.conftest import MockedEhr, good_token
from tests.app.progressive import LIST_PATH, LOAD_ID, settled_page, wait_until_settled
from tests.support import ISS, PATIENT, TOKEN, searchset, study

FHIR_JSON = "application/fhir+json"
PAGES, PER_PAGE = 3, 2


def _ids(page: str) -> list[str]:
    import re
    return re.findall(r'data-study-id="([^"]*)"', page)


class PagedEhr:
    """A mocked EHR answering ``PAGES`` pages of ``PER_PAGE`` studies (newest first); later pages wait for ``gate``;
    ``refuse``: tokens whose later-page requests get 401."""

    def __init__(self, ehr: MockedEhr):
        self.ehr = ehr
        self.gate = threading.Event()
        self.gate.set()
        self.refuse: set[str] = set()
        ehr.mock.get(f"{ISS}/Patient/{PATIENT}", json={"resourceType": "Patient", "id": PATIENT},
                     content_type=FHIR_JSON)
        ehr.mock.add_callback(responses.GET, f"{ISS}/ImagingStudy", callback=self.answer)

    @staticmethod
    def study_id(page: int, index: int) -> str:
        return f"is-{page}-{index}"

    def answer(self, request):
        page = int(request.url.rsplit("page=", 1)[1]) if "page=" in request.url else 1
        if page > 1:
            assert self.gate.wait(60)  # generous: a loaded CI machine may hold the test thread a while
            if request.headers["Authorization"].removeprefix("Bearer ") in self.refuse:
                return 401, {"Content-Type": FHIR_JSON}, json.dumps({"resourceType": "OperationOutcome", "issue": []})
        year = 2025 - page
        resources = [study(self.study_id(page, i), f"2.25.{page}{i}", f"{year}-0{9 - i}-01T10:00:00Z",
                           modality="MR" if i else "CT") for i in range(PER_PAGE)]
        next_url = f"{ISS}/ImagingStudy?patient={PATIENT}&page={page + 1}" if page < PAGES else None
        return 200, {"Content-Type": FHIR_JSON}, json.dumps(searchset(resources, next_url=next_url))

    def searches(self) -> int:
        return len(self.ehr.calls_to("/ImagingStudy"))


@pytest.fixture
def paged(ehr):
    ehr.well_known()
    return PagedEhr(ehr)


ALL = [PagedEhr.study_id(p, i) for p in range(1, PAGES + 1) for i in range(PER_PAGE)]


def _open(ehr, token=None):
    callback = ehr.authorized(token or good_token())
    assert callback.status_code == 303
    list_url = callback.headers["Location"]
    return list_url, ehr.client.get(list_url).get_data(as_text=True)


def _rows(ehr, page: str, **query):
    rows_url = LIST_PATH.search(page).group(1) + "rows"
    query.setdefault("load", LOAD_ID.search(page).group(1))
    return ehr.client.get(rows_url, query_string=query)


def test_the_page_holds_the_first_page_and_the_rows_route_the_rest_exactly(ehr, paged):
    paged.gate.clear()
    _, page = _open(ehr)
    assert _ids(page) == ALL[:2] and 'data-loading="true"' in page
    assert "Loading older studies… 2 loaded so far." in page
    waiting = _rows(ehr, page, after=2).get_json()
    for _ in range(200):  # the loader keeps the first page from its own thread, just after the page is sent
        if waiting["same_load"]:
            break
        time.sleep(0.05)
        waiting = _rows(ehr, page, after=2).get_json()
    assert (waiting["loading"], waiting["loaded"], waiting["ids"]) == (True, 2, [])
    paged.gate.set()
    wait_until_settled(ehr.client, page)
    answer = _rows(ehr, page, after=2, last=ALL[1]).get_json()
    assert answer["ids"] == ALL[2:] and answer["html"].count('<li class="study') == 4
    assert (answer["same_load"], answer["loading"], answer["matching"], answer["more"], answer["after"],
            answer["prefix_changed"], answer["incomplete"]) == (True, False, 6, 0, 2, False, None)
    assert _rows(ehr, page, after=3, limit=2).get_json()["ids"] == ALL[3:5]
    assert paged.searches() == PAGES


@pytest.mark.parametrize("query", [{"after": "-1"}, {"after": "x"}, {}, {"after": "100001"},
                                   {"after": "0", "limit": "201"}, {"after": "0", "limit": "-1"}])
def test_after_and_limit_out_of_bounds_are_refused(ehr, paged, query):
    _, page = _open(ehr)
    response = _rows(ehr, page, **query)
    assert response.status_code == 400 and "after" in response.get_json()["error"]


def test_after_past_the_end_gives_no_rows(ehr, paged):
    _, page = _open(ehr)
    wait_until_settled(ehr.client, page)
    for after in (6, 7, 100_000):
        answer = _rows(ehr, page, after=after).get_json()
        assert (answer["ids"], answer["html"].strip(), answer["more"], answer["matching"]) == ([], "", 0, 6)


def test_another_browser_or_launch_gets_nothing(app, ehr, paged):
    _, page = _open(ehr)
    wait_until_settled(ehr.client, page)
    rows_url = LIST_PATH.search(page).group(1) + "rows"
    stranger = app.test_client()  # another browser: no binding cookie
    assert stranger.get(rows_url, query_string={"after": 0}).status_code == 404
    assert ehr.client.get("/l/not-a-launch/rows", query_string={"after": 0}).status_code == 404
    # a second launch in the same browser answers with its own list only
    paged.ehr.mock.get(f"{ISS}/Patient/pt-2", json={"resourceType": "Patient", "id": "pt-2"}, content_type=FHIR_JSON)
    _, other = _open(ehr, good_token(patient=PATIENT))
    assert LIST_PATH.search(other).group(1) != LIST_PATH.search(page).group(1)
    mine = _rows(ehr, page, after=0).get_json()
    theirs = _rows(ehr, other, after=0).get_json()
    assert mine["load"] != theirs["load"]
    assert _rows(ehr, page, after=0, load=theirs["load"]).get_json()["same_load"] is False


def test_rows_follow_the_pages_order_and_filter(ehr, paged):
    _, page = _open(ehr)
    wait_until_settled(ehr.client, page)
    assert _rows(ehr, page, after=0, sort="oldest").get_json()["ids"] == ALL[::-1]
    assert _rows(ehr, page, after=0, sort="modality").get_json()["ids"] == ALL[0::2] + ALL[1::2]
    assert _rows(ehr, page, after=1, modality="CT").get_json()["ids"] == ALL[2::2]
    # the page's last row is not the one at after - 1 (the order changed under it): rows from the first
    moved = _rows(ehr, page, after=2, limit=2, last=ALL[0]).get_json()
    assert (moved["prefix_changed"], moved["after"], moved["ids"]) == (True, 0, ALL[:4])


def _renewal_after_the_first_page(ehr, paged):
    """Open the list (later pages held), then let the token endpoint answer a renewal, then release them."""
    paged.gate.clear()
    list_url, page = _open(ehr, good_token(refresh_token="r-1"))
    ehr.mock.replace(responses.POST, TOKEN, json={**good_token(), "access_token": "tok-renewed", "refresh_token": "r-2"})
    paged.gate.set()
    return list_url, page


def test_a_401_on_a_later_page_renews_the_token_once(ehr, paged):
    paged.refuse.add("tok-good")
    list_url, page = _renewal_after_the_first_page(ehr, paged)
    wait_until_settled(ehr.client, page)
    final = ehr.client.get(list_url).get_data(as_text=True)
    assert _ids(final) == ALL and "List incomplete" not in final
    assert len(ehr.calls_to("/oauth2/token", "POST")) == 2  # the code exchange, one renewal
    assert paged.searches() == PAGES + 1  # page 2 refused once, asked again with the renewed token


def test_a_refused_renewal_leaves_the_list_incomplete_with_the_first_page(ehr, paged):
    paged.refuse.update({"tok-good", "tok-renewed"})
    list_url, page = _renewal_after_the_first_page(ehr, paged)
    answer = wait_until_settled(ehr.client, page)
    assert answer["incomplete"] == study_lists.AUTHORIZATION_ENDED
    final = ehr.client.get(list_url).get_data(as_text=True)
    assert _ids(final) == ALL[:2] and f"<strong>List incomplete:</strong> {escape(study_lists.AUTHORIZATION_ENDED)}." in final
    assert len(ehr.calls_to("/oauth2/token", "POST")) == 2 and paged.searches() == 1 + 2  # one renewal, no loop


def test_a_loader_that_died_reads_as_incomplete_after_the_list_deadline_and_refresh_refetches(ehr_with, monkeypatch):
    ehr = ehr_with(study_list_ttl_seconds=3600)  # the cached list outlives the loader's deadline
    paged = PagedEhr(ehr)

    def dies_after_the_first_write(reopen, study_list, cursor, limits, images, included, slot):
        with slot:
            study_lists._keep(reopen, study_list, first=True)  # then the instance is gone

    real_loader = study_lists.load_older_pages
    monkeypatch.setattr(study_lists, "load_older_pages", dies_after_the_first_write)
    list_url, page = _open(ehr)
    time.sleep(0.2)
    assert _rows(ehr, page, after=2).get_json()["loading"] is True  # it could still be alive
    assert "Loading older studies" in ehr.client.get(list_url).get_data(as_text=True)
    ehr.client.get(list_url, query_string={"refresh": "1"})  # Refresh, too, waits for a loader that may be alive
    assert paged.searches() == 1  # no second load while one may be at work
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 60 + 30 + 6)  # list deadline + one page's deadline + slack
    gone = _rows(ehr, page, after=2).get_json()
    assert (gone["loading"], gone["incomplete"], gone["ids"]) == (False, study_lists.LOADER_GONE, [])
    shown = ehr.client.get(list_url).get_data(as_text=True)
    assert f"<strong>List incomplete:</strong> {study_lists.LOADER_GONE}." in shown
    monkeypatch.setattr(study_lists, "load_older_pages", real_loader)
    paged.gate.clear()
    refreshed = ehr.client.get(list_url, query_string={"refresh": "1"})
    assert paged.searches() == 2 and 'data-loading="true"' in refreshed.get_data(as_text=True)
    paged.gate.set()
    assert _ids(settled_page(ehr.client, refreshed)) == ALL
    assert paged.searches() == 1 + PAGES


def test_one_loader_per_launch_a_second_one_stops_before_writing():
    from app.fhir.study_list import ListLoading, StudyList

    class Context:
        def __init__(self, holder):
            self.holder = holder
            self.settings = type("S", (), {"fhir": study_lists.FhirSettings()})()

        @property
        def state(self):
            return type("State", (), {"study_list": self.holder["list"]})()

        def keep_study_list(self, study_list):
            self.holder["list"] = study_list
            self.holder["writes"] += 1

    now = time.time()
    holder = {"list": StudyList(studies=[], banner=None, load_id="A", loading=ListLoading("A", now, now)), "writes": 0}
    second = StudyList(studies=[], banner=None, load_id="B", loading=ListLoading("B", now, now))
    assert study_lists._keep(lambda: Context(holder), second, first=True) is False
    assert holder["list"].load_id == "A" and holder["writes"] == 0
    # A's own next write goes through; once A settled, B's later write is refused too
    assert study_lists._keep(lambda: Context(holder), holder["list"]) is True
    holder["list"] = StudyList(studies=[], banner=None, load_id="A")
    assert study_lists._keep(lambda: Context(holder), second) is False
