"""`python -m bench.report [bench/results/latest.json]`: print a JSON report of `bench.run` as the
Markdown table docs/benchmarks.md shows, with the run's machine and timings."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.common import ROOT, Result
from bench.run import table


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else ROOT / "bench" / "results" / "latest.json"
    report = json.loads(path.read_text())
    fields = ("row", "what", "measured", "baseline", "ratio", "target", "met", "verdict")
    results = [Result(**{k: r[k] for k in fields}) for r in report["results"]]
    m = report["machine"]
    print(
        f"{report['mode']} run of {report['started_at'][:16].replace('T', ' ')} UTC, "
        f"{report['duration_s']:.0f} s; {m.get('nproc')} x {m.get('cpu')}, {m.get('ram_gib')} GiB; "
        f"PostgreSQL {m.get('postgresql')}, Redis {m.get('redis')}; Python {m.get('python')}; "
        f"commit {m.get('commit')} ({m.get('app_tree', '?')})\n"
    )
    print(table(results))
    print(f"\nrow durations (s): {report['row_durations_s']}")
    if "row_loadavg_5min" in report:
        print(f"5-min load average after each row: {report['row_loadavg_5min']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
