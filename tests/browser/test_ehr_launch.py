"""Scenario 1: an EHR launch from the sandbox chart completes inside the chart's (cross-site) iframe."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support import query_of

from .pages import STUDY_ROWS, open_chart, record_frame_navigations, study_datetimes, study_ids, wait_for_study_list

pytestmark = pytest.mark.browser

PT_1001_NEWEST_FIRST = "is-1001-us-cine"  # 2016-05-03, the most recent of Margaret Ann Whitfield's 10 studies


def test_ehr_launch_completes_inside_the_chart_frame(page, servers):
    top_level = []
    page.on("framenavigated", lambda frame: top_level.append(frame.url) if frame == page.main_frame else None)
    frame_urls = record_frame_navigations(page)
    chart_url = servers.chart_url("pt-1001")

    app = open_chart(page, servers, "pt-1001")
    wait_for_study_list(app)

    # the EHR page never navigated away: the whole launch ran in its frame, on the app's own site
    assert page.url == chart_url
    assert top_level == [chart_url]
    assert app.parent_frame == page.main_frame
    assert app.url.startswith(f"{servers.app_origin}/l/"), app.url
    # every hop of the launch, in the frame: a fresh browser gets the cookie check, then OAuth, then the list
    hops = [(url.split("?")[0], url) for url in frame_urls]
    assert [base for base, _ in hops] == [
        f"{servers.app_origin}/launch",
        f"{servers.app_origin}/launch/check/{hops[1][0].rsplit('/', 1)[-1]}",
        f"{servers.ehr_origin}/oauth2/authorize",
        f"{servers.app_origin}/callback",
        app.url,
    ], frame_urls
    launch = query_of(hops[0][1])
    assert set(launch) == {"iss", "launch"} and launch["iss"] == servers.iss
    authorize = query_of(hops[2][1])
    assert (authorize["aud"], authorize["launch"], authorize["client_id"]) == \
        (servers.iss, launch["launch"], "imaging-app")

    banner = app.locator("header.banner")
    expect(banner.locator("#patient-name")).to_have_text("WHITFIELD, Margaret Ann")
    expect(banner).to_contain_text("1958-03-14")
    expect(banner).to_contain_text("M0041001")

    expected = servers.patient("pt-1001").studies
    expect(app.locator(STUDY_ROWS)).to_have_count(10)
    expect(app.locator("#study-count")).to_have_text("10")
    ids = study_ids(app)
    assert sorted(ids) == sorted(s.id for s in expected)
    assert ids[0] == PT_1001_NEWEST_FIRST
    dates = study_datetimes(app)
    assert dates == sorted(dates, reverse=True)
    started = {s.id: s.started for s in expected}
    assert dates == [started[i] for i in ids]
