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
    for runs, label, style in ((product, "product: first page shown", "o-"),
                               (baseline, "baseline (fhirclient): whole list", "s--")):
        if runs:
            ax.plot([r["size"] for r in runs], [r["median_ms"] for r in runs], style, label=label)
    settled = [r for r in product if r.get("settle_wait_s") is not None]
    if settled:  # the background loader's last page in the list (the 0.5 s quiet wait of the bench taken off)
        ax.plot([r["size"] for r in settled], [r["median_ms"] + max(0.0, r["settle_wait_s"] - 0.5) * 1000
                                               for r in settled], "o:", label="product: every page in the list")
    floors = sorted({(r["size"], r["floor_ms"]) for r in product + baseline})
    ax.plot([s for s, _ in floors], [f for _, f in floors], "k:", label="floor of the whole list (3 RTT + extra pages)")
    ax.axhline(3 * (history.get("rtt_ms") or 50), color="grey", linestyle="-.", linewidth=1,
               label="floor of the first page shown (3 RTT)")
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
