"""The sandbox viewer labels every study time the same way (issue 10 item 4): ``YYYY-MM-DD HH:MM UTC−05:00`` with
the study's own offset, never a zone abbreviation ("CDT") beside an offset ("UTC-05:00")."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from sandbox import create_app


def test_viewer_times_all_carry_their_offset_in_one_style():
    ehr = create_app({"PUBLIC_BASE_URL": "http://localhost:8800", "APP_ORIGIN": "http://127.0.0.1:8000",
                      "TESTING": True})
    with ehr.app_context():
        studies = [s for s in ehr.extensions["sandbox"].dataset.patient("pt-1001").studies if s.started]
    uids = ",".join(s.study_instance_uid for s in studies)
    page = ehr.test_client().get("/IHEInvokeImageDisplay?" + urlencode({"requestType": "STUDY", "studyUID": uids}))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    shown = re.findall(r'<time class="study-time" datetime="([^"]+)">([^<]+)</time>', html)
    expected = []
    for study in studies:
        offset = study.started.strftime("%z")
        label = "UTC" if offset == "+0000" else f"UTC{'−' if offset[0] == '-' else '+'}{offset[1:3]}:{offset[3:5]}"
        expected.append((study.started.isoformat(), f"{study.started:%Y-%m-%d %H:%M} {label}"))
    assert len(shown) == 10 and sorted(shown) == sorted(expected)
    assert not re.search(r"\b(CDT|CST|EDT|EST)\b", html)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC[−+]\d\d:\d\d", text) for _, text in shown)
