"""In-process re-open bench and profiler: what one re-opened list costs the app, without network or load generator.

Usage: ``PYTHONPATH=$PWD .venv/bin/python bench/reopen.py [--sizes 10,1000,5000,10000] [--reps 30]
[--profile 5000] [--tracemalloc 5000] [--store sqlite|redis]``

For each size it builds the app (``create_app``, the SQLite launch store in a
temporary directory, or Redis with ``--store redis``), activates one launch
whose list holds that many generated ImagingStudy summaries (the sandbox's
``generate_history``, as ``bench/run.py`` serves them) and a report per tenth
study, keeps the list the way a first load does (:meth:`LaunchContext.keep_study_list`),
then times ``GET /l/<id>/`` through Flask's test client (WSGI, no socket):
the first re-open (this process has not decoded the list yet: what another
worker pays once), the median of ``--reps`` re-opens after it, and the
median of re-opens with a study selected (``?study=<id>``: not the kept default
view, so the page is rendered for each request around its rows' kept HTML, app/web/row_html.py). ``--profile
N`` prints cProfile's top functions of 20 re-opens at N studies;
``--tracemalloc N`` the peak Python allocation of one cold re-open and of
keeping the list. Figures are wall times on a shared machine: compare runs of
the same moment.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import secrets
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.fhir.imaging import summarize  # noqa: E402
from app.fhir.reports import ReportSummary  # noqa: E402
from app.fhir.study_list import StudyList  # noqa: E402
from app.launches.context import LaunchContext  # noqa: E402
from app.launches.state import ActiveLaunch, PendingLaunch  # noqa: E402
from app.smart.tokens import TokenGrant  # noqa: E402
from app.web.security import BROWSER_BINDING_KEY  # noqa: E402
from app.web.services import services  # noqa: E402
from sandbox.history import generate_history  # noqa: E402

ISS = "https://ehr.example.org/fhir"
REOPEN_TARGET_MS = 5.0


def _registration() -> dict:
    return {"app": {"launch_uri": "https://app.example.net/launch", "redirect_uri": "https://app.example.net/callback"},
            "ehrs": [{"name": "Bench EHR", "iss": ISS, "client_id": "imaging-app",
                      "frame_ancestors": ["https://ehr.example.org"]}],
            "viewer": {"base_url": "https://viewer.example.org/IHEInvokeImageDisplay", "viewerType": "IHE_BIR"},
            "fhir": {"study_list_ttl_seconds": 3600}}


def study_list_of(size: int, patient: str = "pt-bench") -> StudyList:
    """``size`` generated studies summarised as a first load does, newest first, a final report per tenth study."""
    studies = [summarize(record.resource) for record in generate_history(patient, size)]
    studies.sort(key=lambda s: -(s.started_sort or 0.0))
    reports = [ReportSummary(id=f"r-{i}", status="final", issued=s.started, effective=s.started, code_text="Report",
                             performers=("Dr. Bench",), conclusion="No acute findings.", text=None, html=None,
                             pdf_index=None, pdf_title=None, study_refs=(s.id,), accessions=())
               for i, s in enumerate(studies) if i % 10 == 0]
    return StudyList(studies=studies, banner=None, fetched_at=time.time(), reports=reports)


class Reopen:
    """One app with one active launch holding a list of ``size`` studies; :meth:`get` re-opens it."""

    def __init__(self, size: int, workdir: Path, store_url: str | None = None):
        import os
        if store_url:
            os.environ["LAUNCH_STORE_URL"] = store_url
        self.app = create_app(_registration(), secret_key=secrets.token_hex(32),
                              store_path=None if store_url else workdir / f"launches-{size}.sqlite3")
        self.client = self.app.test_client()
        browser = secrets.token_urlsafe(32)
        with self.app.app_context():
            store = services().store
            state = secrets.token_urlsafe(32)
            launch_id = store.create_pending(browser, state, PendingLaunch(
                iss=ISS, launch=None, code_verifier="v" * 43, scope="launch", token_endpoint=ISS + "/token",
                authorize_url=ISS + "/authorize", redirect_uri="https://app.example.net/callback"))
            store.claim(state, browser)
            grant = TokenGrant(access_token="bench-token", scope="launch patient/ImagingStudy.rs", expires_at=None,
                               refresh_token=None, patient="pt-bench")
            store.activate(launch_id, ActiveLaunch(iss=ISS, launch=None, patient="pt-bench", grant=grant,
                                                   token_endpoint=ISS + "/token"), 8 * 3600)
            self.study_list = study_list_of(size)
            svc = services()
            context = LaunchContext.load(store, svc.settings, svc.outbound, launch_id, browser)
            self.keep = lambda: context.keep_study_list(self.study_list)
            self.keep()
        with self.client.session_transaction() as session:
            session[BROWSER_BINDING_KEY] = browser
        self.path = f"/l/{launch_id}/"

    def get(self, query: str = "") -> float:
        """Seconds of one re-open (the whole WSGI response read); ``query``: e.g. ``?study=<id>``."""
        started = time.perf_counter()
        response = self.client.get(self.path + query, headers={"Host": "app.example.net"})
        response.get_data()
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"re-open answered {response.status_code}")
        return elapsed


def clear_process_caches() -> None:
    """Forget what this process decoded (what a fresh worker sees), when the app has such a cache."""
    try:
        from app.launches import list_cache
    except ImportError:
        return
    list_cache.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/reopen.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,1000,5000,10000")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--profile", type=int, default=0, help="cProfile of 20 re-opens at this size")
    parser.add_argument("--tracemalloc", type=int, default=0, help="peak allocations at this size")
    parser.add_argument("--store-url", default=None, help="e.g. redis://127.0.0.1:6379/0 (default SQLite)")
    args = parser.parse_args(argv)
    import logging
    logging.getLogger("imaging.requests").disabled = True  # one JSON line per request would dominate
    with tempfile.TemporaryDirectory(prefix="reopen-bench-") as scratch:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            bench = Reopen(size, Path(scratch), args.store_url)
            clear_process_caches()
            first = bench.get() * 1000
            walls = [bench.get() * 1000 for _ in range(args.reps)]
            median = statistics.median(walls)
            html = len(bench.client.get(bench.path, headers={"Host": "app.example.net"}).get_data())
            selected = f"?study={bench.study_list.studies[len(bench.study_list.studies) // 2].id}"
            clicked = statistics.median([bench.get(selected) * 1000 for _ in range(max(3, args.reps // 3))])
            print(f"{size:>6} studies: re-open median {median:6.2f} ms (p90 {sorted(walls)[int(len(walls) * .9)]:.2f}),"
                  f" first in this process {first:6.1f} ms, page {html / 1024:.0f} KiB; goal ≤ {REOPEN_TARGET_MS:.0f} ms "
                  f"{'met' if median <= REOPEN_TARGET_MS else 'missed'}; with a study selected (page rendered, rows kept) "
                  f"{clicked:6.2f} ms", flush=True)
            if size == args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(20):
                    bench.get()
                profiler.disable()
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                for order in ("tottime", "cumulative"):
                    stats.sort_stats(order).print_stats(18)
                print(out.getvalue())
            if size == args.tracemalloc:
                clear_process_caches()
                tracemalloc.start()
                bench.get()
                _, peak_open = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                bench.keep()
                _, peak_keep = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                print(f"  tracemalloc at {size}: cold re-open peak {peak_open / 1024:.0f} KiB "
                      f"({peak_open / size:.0f} B/study), keep_study_list peak {peak_keep / 1024:.0f} KiB "
                      f"({peak_keep / size:.0f} B/study)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
