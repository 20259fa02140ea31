"""PNG plots of a results dict (as written to bench/results/results.json)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_overhead(results: dict, out: Path) -> Path:
    """Added latency (p50/p95/p99) per store size, non-streaming and streaming TTFT, with the targets."""
    runs = results["overhead"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, mode, title, targets in ((axes[0], "non_streaming", "added latency (non-streaming)", (15, 40)),
                                     (axes[1], "streaming_ttft", "added time to first token", (15,))):
        width = 0.8 / max(len(runs), 1)
        for i, run in enumerate(runs):
            values = [run[mode]["added_ms"][q] for q in ("p50", "p95", "p99")]
            ax.bar([x + i * width for x in range(3)], values, width, label=run["label"])
        for target in targets:
            ax.axhline(target, color="red", linestyle="--", linewidth=1)
        ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(3)], ["p50", "p95", "p99"])
        ax.set_title(title)
        ax.set_ylabel("ms")
        ax.legend()
    fig.tight_layout()
    path = out / "overhead.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_recall(results: dict, out: Path) -> Path:
    """Recall p50/p95 and process RSS against the number of stored episodes."""
    rows = results["recall_scaling"]
    sizes = [r["episodes"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(sizes, [r["recall_ms"]["total"]["p50"] for r in rows], "o-", label="recall p50")
    ax.plot(sizes, [r["recall_ms"]["total"]["p95"] for r in rows], "s--", label="recall p95")
    for step in ("embed", "vector", "fts5"):
        ax.plot(sizes, [r["recall_ms"][step]["p50"] for r in rows], ":", label=f"{step} p50")
    ax.set_xscale("log")
    ax.set_xlabel("stored episodes")
    ax.set_ylabel("ms")
    rss = ax.twinx()
    rss.plot(sizes, [r["rss_mb"] for r in rows], "k-.", alpha=0.5, label="RSS (MiB)")
    rss.set_ylabel("RSS MiB")
    ax.legend(loc="upper left")
    ax.set_title("recall latency vs store size")
    fig.tight_layout()
    path = out / "recall_scaling.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_concurrency(results: dict, out: Path) -> Path:
    """Turns/s and p95 latency against concurrent sessions."""
    rows = results["concurrency"]
    sessions = [r["sessions"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(sessions, [r["turns_per_s"] for r in rows], "o-", label="turns/s")
    ax.set_xlabel("concurrent sessions")
    ax.set_ylabel("turns/s")
    lat = ax.twinx()
    lat.plot(sessions, [r["latency_ms"]["p95"] for r in rows], "rs--", label="p95 ms")
    lat.set_ylabel("p95 latency (ms)")
    ax.set_title("concurrency (fake zero-latency backend)")
    fig.legend(loc="upper left")
    fig.tight_layout()
    path = out / "concurrency.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_all(results: dict, out: Path) -> list[Path]:
    """Every plot that has data."""
    paths = []
    if results.get("overhead"):
        paths.append(plot_overhead(results, out))
    if results.get("recall_scaling"):
        paths.append(plot_recall(results, out))
    if results.get("concurrency"):
        paths.append(plot_concurrency(results, out))
    return paths
