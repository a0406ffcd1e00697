"""Test helpers for lists sent after their first page: wait for the background loader, then read the list again."""

from __future__ import annotations

import re
import time

LOAD_ID = re.compile(r'data-load-id="([^"]*)"')
LIST_PATH = re.compile(r'data-rows-url="(/l/[^/"]+/)rows"')


def is_loading(page: str) -> bool:
    """True when the list page was sent while older pages were still loading."""
    return 'data-loading="true"' in page


def wait_until_settled(client, page: str, timeout: float = 10.0) -> dict:
    """Poll ``/l/<id>/rows`` (``limit=0``) as the browser does until the stored list is the page's own load
    and no longer loading; its last answer. Fails after ``timeout`` seconds."""
    rows_url = LIST_PATH.search(page).group(1) + "rows"
    load = LOAD_ID.search(page).group(1)
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(rows_url, query_string={"after": 0, "limit": 0, "load": load}).get_json()
        if answer["same_load"] and not answer["loading"]:
            return answer
        assert time.monotonic() < deadline, f"the list is still loading after {timeout} s: {answer}"
        time.sleep(0.02)


def settled_page(client, response, timeout: float = 10.0) -> str:
    """The list page of ``response`` once complete: the same page if it was sent complete, else read again
    after the background loader settled the list (from the launch's cache: no further EHR request)."""
    page = response.get_data(as_text=True)
    if not is_loading(page):
        return page
    wait_until_settled(client, page, timeout)
    list_url = LIST_PATH.search(page).group(1)
    return client.get(list_url).get_data(as_text=True)
