"""The chart of launch → list time against history size: product, fhirclient baseline and the floor (matplotlib).

Written as a PNG beside the run's JSON (``bench/results/<time>.png``) and as
``latest.png`` (complete runs) or ``latest-partial.png``. Needs the ``bench``
extra (``pip install -e '.[bench]'``); without matplotlib the bench says so and goes on.
"""

from __future__ import annotations

from pathlib import Path


def launch_chart(history: dict, path: Path, title: str) -> bool:
    """Plot ``history`` (section 2 results) to ``path``; False if matplotlib is missing or there is nothing to plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    product, baseline = history.get("product") or [], history.get("baseline") or []
    if not product and not baseline:
        return False
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for runs, label, style in ((product, "product (app/)", "o-"), (baseline, "baseline (fhirclient)", "s--")):
        if runs:
            ax.plot([r["size"] for r in runs], [r["median_ms"] for r in runs], style, label=label)
    floors = sorted({(r["size"], r["floor_ms"]) for r in product + baseline})
    ax.plot([s for s, _ in floors], [f for _, f in floors], "k:", label="floor (3 RTT + extra pages)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("studies in the patient's history")
    ax.set_ylabel("launch → list (ms, median)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
