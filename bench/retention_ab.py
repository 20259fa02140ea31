"""Diagnosis only, not run by `run_all`: the service's added latency with checkpoint retention off and on.

The real service (`python -m server`) in front of the zero-latency fake backend, `bench/overhead.py`'s turns
(200 non-streaming, 100 streaming, one session each, so the pruner works on them), alternating
CHECKPOINTS_KEPT=0 and =10 `--pairs` times, each in turn first and second, so that drift of the machine
shows as spread, not as a difference.

    python bench/retention_ab.py [--pairs 2] [--turns 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fake_backend import BackendProcess  # noqa: E402
from bench.overhead import run_overhead  # noqa: E402
from bench.service import Service  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp, BackendProcess() as backend:
        for pair in range(args.pairs):
            for kept in ("0", "10") if pair % 2 == 0 else ("10", "0"):  # the order alternates too
                workdir = Path(tmp) / f"{pair}-{kept}"
                workdir.mkdir()
                with Service(workdir, backend.base_url, {"CHECKPOINTS_KEPT": kept}) as service:
                    result = run_overhead(service.base_url, backend.base_url, f"kept={kept}", args.turns,
                                          args.turns // 2)
                rows.append((pair, kept, result))
    print("\n| pair | CHECKPOINTS_KEPT | added p50 ms | added p95 ms | orchestrated p50 / p95 ms | TTFT added p50 ms |")
    print("|---|---|---|---|---|---|")
    for pair, kept, r in rows:
        ns, st = r["non_streaming"], r["streaming_ttft"]
        print(f"| {pair} | {kept} | {ns['added_ms']['p50']:.1f} | {ns['added_ms']['p95']:.1f} | "
              f"{ns['orchestrated_ms']['p50']:.1f} / {ns['orchestrated_ms']['p95']:.1f} | "
              f"{st['added_ms']['p50']:.1f} |")


if __name__ == "__main__":
    main()
