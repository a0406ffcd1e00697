"""Several app instances behind one public host, sharing one Redis: any instance serves any launch.

Two gunicorn processes (2 workers each) on two loopback ports play the
instances behind a load balancer without sticky sessions: every request
carries the public ``Host`` (instance A's address, the registered
``redirect_uri``), whichever port it is sent to. The sandbox EHR is a live
server that counts token requests.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time

import pytest

from tests.deploy.instances import Browser, ehr_launch, free_port, gunicorn_instance, sandbox_ehr
from tests.support import sandbox_registration

SECRET = "instances-test-secret-" + "s" * 30


def _ids(page: str) -> list[str]:
    return re.findall(r'data-study-id="([^"]+)"', page)


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory):
    """``(a, b, ehr_base, sandbox, env, folder)``: instances A and B sharing one Redis, and the sandbox EHR."""
    folder = tmp_path_factory.mktemp("instances")
    port_a = free_port()
    public = f"http://127.0.0.1:{port_a}"
    with sandbox_ehr(public) as (ehr_base, sandbox):
        registration = sandbox_registration(public, ehr_base, fhir={"connect_timeout": 2, "read_timeout": 10})
        registration["launch_store"] = {"url": redis_server.url, "password_env": "TEST_REDIS_PASSWORD",
                                        "key_prefix": f"instances-{port_a}:"}
        (folder / "smart-launch.json").write_text(json.dumps(registration), encoding="utf-8")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SECRET_KEY": SECRET,
               "SMART_LAUNCH_CONFIG": str(folder / "smart-launch.json"), "TEST_REDIS_PASSWORD": redis_server.password}
        with gunicorn_instance(env, folder / "a.log", port=port_a) as a, \
                gunicorn_instance(env, folder / "b.log") as b:
            yield a, b, ehr_base, sandbox, env, folder


def _launch(browser: Browser, start_on, callback_on, ehr_base: str, patient: str = "pt-1001", **options) -> str:
    """Start an EHR launch on one instance, complete its callback on another; the launch's list path."""
    started = browser.get(start_on.url, ehr_launch(ehr_base, patient, **options))
    assert started.status_code == 303, started.text[:300]
    callback = browser.get(callback_on.url, browser.authorize(started.headers["Location"]))
    assert callback.status_code == 303, callback.text[:500]
    return callback.headers["Location"].removeprefix(f"http://{browser.public_host}")


def test_a_launch_started_on_a_completes_on_b_and_its_list_opens_on_a(cluster):
    a, b, ehr_base, sandbox, _, _ = cluster
    browser = Browser(f"127.0.0.1:{a.port}")
    list_path = _launch(browser, a, b, ehr_base)
    assert re.fullmatch(r"/l/[A-Za-z0-9_-]{32}/", list_path)
    for instance in (a, b, a):
        page = browser.get(instance.url, list_path)
        assert page.status_code == 200
        assert len(_ids(page.text)) == 10 and 'class="banner"' in page.text
    stranger = Browser(f"127.0.0.1:{a.port}")
    assert stranger.get(b.url, list_path).status_code == 404


def test_concurrent_renewals_on_a_and_b_send_one_refresh_and_both_use_the_new_token(cluster):
    a, b, ehr_base, sandbox, _, _ = cluster
    browser = Browser(f"127.0.0.1:{a.port}")
    list_path = _launch(browser, a, b, ehr_base, faults={"expired_token": True})  # expires_in 0: renew at once
    sandbox.grants.clear()
    barrier = threading.Barrier(4)
    pages: list = []

    def view(instance):
        barrier.wait()
        pages.append(browser.get(instance.url, list_path + "?refresh=1"))

    threads = [threading.Thread(target=view, args=(instance,)) for instance in (a, b, a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [p.status_code for p in pages] == [200] * 4
    assert all(len(_ids(p.text)) == 10 for p in pages)
    assert dict(sandbox.grants) == {"refresh_token": 1}
    for instance in (a, b):  # both go on with the renewed token: no further refresh
        assert browser.get(instance.url, list_path + "?refresh=1").status_code == 200
    assert dict(sandbox.grants) == {"refresh_token": 1}


def test_with_a_killed_mid_traffic_b_serves_every_launch(cluster):
    _, b, ehr_base, sandbox, env, folder = cluster
    with gunicorn_instance(env, folder / "a2.log") as a2:
        browsers = []
        for n, patient in enumerate(["pt-1001", "pt-1002", "pt-1001", "pt-1002"]):
            browser = Browser(f"127.0.0.1:{a2.port}")
            start, finish = (a2, b) if n % 2 else (a2, a2)
            browsers.append((browser, _launch(browser, start, finish, ehr_base, patient), patient))
        failures_on_b: list[int] = []
        stop = threading.Event()

        def traffic():
            while not stop.is_set():
                for browser, path, _ in browsers:
                    status = browser.get(b.url, path).status_code
                    if status != 200:
                        failures_on_b.append(status)

        runner = threading.Thread(target=traffic)
        runner.start()
        time.sleep(0.5)
        a2.kill()  # SIGKILL to master and workers: no clean shutdown
        time.sleep(0.5)
        stop.set()
        runner.join()
    assert failures_on_b == []
    for browser, path, patient in browsers:  # every launch, those that A alone had served too
        page = browser.get(b.url, path)
        assert page.status_code == 200
        assert len(_ids(page.text)) == {"pt-1001": 10, "pt-1002": 1}[patient]
