"""Micro-bench of one ImagingStudy search page through the app's own code: where the CPU and memory per study go.

Usage: ``PYTHONPATH=. .venv/bin/python bench/decode.py [--studies 1000] [--page 1000] [--repeat 15] [--profile]``

The page is the sandbox's own (``sandbox/history.py`` generates the patient ``pt-h<studies>``; the Bundle is
built as ``sandbox/fhir_api.py`` ``search_studies`` builds it: the newest ``--page`` studies with
``search.mode`` ``match`` and their Endpoints ``include``\\ d, encoded with ``json.dumps`` as it sends them).
Each stage is the app's function on that page, timed as process CPU (``time.process_time``, best of
``--repeat``; the machine is shared, the best run is the least disturbed):

* ``structure`` / ``depth`` / ``orjson`` / ``duplicates``: the parts of
  :func:`app.outbound.jsonsafe.decode_json` (``orjson``: the body decoded whole; ``decode_json`` is the
  whole function: a large object decoded member by member when msgspec is installed, collector paused);
* ``entries``: the Bundle's entry loop (:meth:`app.fhir.client.Search._matches`: modes, de-duplication,
  included Endpoints kept); ``subject``: :func:`app.fhir.study_list.subject_id` of each study;
* ``summarize``: :func:`app.fhir.imaging.summarize` of each study; ``attach``:
  :func:`app.launches.images.attach_endpoints` (Endpoints from the Bundle's includes); ``newest_first``; ``seal``: the list's
  stored form (:meth:`StudyList.to_json` encoded with orjson, as the launch store writes it);
* ``gc``: what a freshly decoded page adds to the next full collection (the first pass over it, minus a
  pass without it; later passes are cheaper, CPython untracks dicts holding only atomic values): what the
  cyclic collector would cost a page; the app pauses it from a page's decoding until the page is
  dropped, so it is not in the total.

Memory (``tracemalloc``, Python allocations): the peak of decoding the page and summarising it, the size of
the decoded page and of the summaries, per study. ``--profile`` prints a cProfile of decode + summarise.
Figures are printed per study in µs (CPU) and KB (memory).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from app.fhir.client import Search  # noqa: E402
from app.fhir.endpoints import IncludedEndpoints  # noqa: E402
from app.fhir.imaging import newest_first, summarize  # noqa: E402
from app.fhir.study_list import StudyList, subject_id  # noqa: E402
from app.launches.images import attach_endpoints  # noqa: E402
from app.outbound import jsonsafe  # noqa: E402

BASE = "https://sandbox.example/fhir"


def sandbox_page(studies: int, page: int) -> bytes:
    """The first search page (newest first) of the generated patient ``pt-h<studies>``, as the sandbox sends it."""
    from sandbox import create_app
    from sandbox.endpoints import referenced_endpoints

    patient_id = f"pt-h{studies}"
    app = create_app({"PUBLIC_BASE_URL": BASE.removesuffix("/fhir"), "APP_ORIGIN": "https://app.example",
                      "EXTRA_HISTORIES": {patient_id: studies}})
    with app.app_context():
        state = app.extensions["sandbox"]
        chosen = sorted(state.dataset.patient(patient_id).studies, key=lambda s: s.resource.get("started", ""),
                        reverse=True)[:page]
        base = state.fhir_base_url
        bundle = {"resourceType": "Bundle", "type": "searchset", "total": studies,
                  "link": [{"relation": "self", "url": f"{base}/ImagingStudy?patient={patient_id}"},
                           {"relation": "next", "url": f"{base}/ImagingStudy?patient={patient_id}&_offset={page}"}],
                  "entry": [{"fullUrl": f"{base}/ImagingStudy/{s.id}", "resource": s.resource,
                             "search": {"mode": "match"}} for s in chosen]}
        bundle["entry"] += [{"fullUrl": f"{base}/Endpoint/{e['id']}", "resource": e, "search": {"mode": "include"}}
                            for e in referenced_endpoints(state, [s.resource for s in chosen])]
    return json.dumps(bundle, ensure_ascii=False).encode()


def best_ms(function, repeat: int) -> float:
    """Least process CPU of ``repeat`` calls, in ms."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return min(times) * 1000


def matches(bundle: dict, included: IncludedEndpoints | None = None) -> list[dict]:
    """The page's matching ImagingStudy resources, read by the app's entry loop (included Endpoints kept
    in ``included``)."""
    client = SimpleNamespace(included=included if included is not None else IncludedEndpoints(), fhir_base_url=BASE)
    search = Search(client, "ImagingStudy", BASE + "/ImagingStudy", 1, None)  # type: ignore[arg-type]
    return list(search._matches(bundle, set()))  # noqa: SLF001


def attach(summaries: list, included: IncludedEndpoints) -> StudyList:
    """:func:`app.launches.images.attach_endpoints` of the page's summaries (Endpoints from the Bundle's
    includes: the sandbox includes them all, no Endpoint is read)."""
    return attach_endpoints(StudyList(studies=summaries, banner=None), included,
                            SimpleNamespace(fhir_base_url=BASE), SimpleNamespace(viewer_origins=()),
                            SimpleNamespace(read=lambda *_: None))


def stages(body: bytes, repeat: int) -> dict[str, float]:
    """ms of process CPU per stage on ``body`` (see the module docstring)."""
    skeleton = jsonsafe._structure(body)  # noqa: SLF001
    value = orjson.loads(body)
    included = IncludedEndpoints()
    resources = matches(value, included)
    summaries = [summarize(r) for r in resources]
    listed = StudyList(studies=newest_first(summaries), banner=None)
    out = {
        "structure": best_ms(lambda: jsonsafe._structure(body), repeat),  # noqa: SLF001
        "depth": best_ms(lambda: jsonsafe._bracket_depth(skeleton, jsonsafe.DEFAULT_MAX_DEPTH), repeat),  # noqa: SLF001
        "orjson": best_ms(lambda: orjson.loads(body), repeat),
        "duplicates": best_ms(lambda: jsonsafe._decoded_members(value) == skeleton.count(b":"), repeat),  # noqa: SLF001
        "decode_json": best_ms(lambda: jsonsafe.decode_json(body, require_object=True), repeat),
        "entries": best_ms(lambda: matches(value), repeat),
        "subject": best_ms(lambda: [subject_id(r) for r in resources], repeat),
        "summarize": best_ms(lambda: [summarize(r) for r in resources], repeat),
        "attach": best_ms(lambda: attach(summaries, included), repeat),
        "newest_first": best_ms(lambda: newest_first(summaries), repeat),
        "seal": best_ms(lambda: orjson.dumps(listed.to_json()), repeat),
    }
    del value, resources
    costs = []
    for _ in range(max(3, repeat // 3)):
        gc.collect()
        empty = best_ms(gc.collect, 1)
        page = jsonsafe.decode_json(body, require_object=True)  # noqa: F841 - alive during the collection
        costs.append(best_ms(gc.collect, 1) - empty)  # the first pass over it (then its flat dicts are untracked)
        del page
    out["gc"] = max(0.0, min(costs))
    return out


def memory(body: bytes) -> dict[str, float]:
    """Python allocation figures in KB (tracemalloc): decoded page, summaries, peak of decode + summarise."""
    gc.collect()
    tracemalloc.start()
    value = jsonsafe.decode_json(body, require_object=True)
    decoded = tracemalloc.get_traced_memory()[0]
    summaries = [summarize(r) for r in matches(value)]
    del value
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"decoded_kb": decoded / 1024, "summaries_kb": kept / 1024, "peak_kb": peak / 1024,
            "studies": len(summaries)}


def main(argv: list[str] | None = None) -> None:
    """Print the stage table (µs per study) and the memory figures (KB per study)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=1000, help="history size of the generated patient")
    parser.add_argument("--page", type=int, default=1000, help="studies in the page (_count)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="cProfile of decode + summarise")
    args = parser.parse_args(argv)
    body = sandbox_page(args.studies, args.page)
    count = len(matches(orjson.loads(body)))
    print(f"page: {count} studies, {len(body) / 1e6:.2f} MB ({len(body) / count / 1024:.2f} KB per study)")
    figures = stages(body, args.repeat)
    parts = ("decode_json", "entries", "subject", "summarize", "attach", "newest_first", "seal")
    for name, ms in figures.items():
        note = " (part of decode_json)" if name in ("structure", "depth", "orjson", "duplicates") else ""
        print(f"  {name:<13} {ms:7.2f} ms  {ms * 1000 / count:6.1f} µs/study{note}")
    total = sum(figures[p] for p in parts)
    print(f"  {'total':<13} {total:7.2f} ms  {total * 1000 / count:6.1f} µs/study "
          f"({' + '.join(parts)}; goal ≤ 20 µs/study end to end)")
    mem = memory(body)
    print(f"memory: decoded page {mem['decoded_kb'] / count:.1f} KB/study, summaries {mem['summaries_kb'] / count:.2f} "
          f"KB/study, peak of decode + summarise {mem['peak_kb'] / count:.1f} KB/study ({mem['peak_kb'] / 1024:.1f} MB)")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            [summarize(r) for r in matches(jsonsafe.decode_json(body, require_object=True))]
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
