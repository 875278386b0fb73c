"""Assemble ``bench/RESULTS.md`` from ``bench/results/*.md`` under a header naming the machine.

    .venv/bin/python bench/report.py [--keep]

Run by ``make bench`` after every benchmark script. With ``--keep``, the sections of
the current RESULTS.md whose result file is not here (another machine's run) are
kept, and the ones here replace theirs: a single benchmark rerun updates only its own. The header gives the CPU
model (/proc/cpuinfo), cores, memory (/proc/meminfo), Python and numpy
versions and the date; each result file follows as its own section, in the
order the benchmarks run (others after, by name).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
from pathlib import Path

import numpy as np
from common import cpu_model

BENCH = Path(__file__).resolve().parent
ORDER = [
    "train_predict",
    "http_predict",
    "slow_clients",
    "json_amplification",
    "prediction_log",
    "prediction_log_budget",
    "auth_keys",
    "canary_routing",
    "monitoring_read",
    "retrain_p99",
    "gunicorn_settings",
    "postgres",
    "outage_503",
    "tracing_overhead",
    "explain",
    "mlserver",
    "soak",
]


def memory_gb() -> str:
    try:
        kb = int(re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M).group(1))
    except (OSError, AttributeError):
        return "unknown"
    return f"{kb / 1024 / 1024:.1f} GB"


def current_sections() -> dict[str, str]:
    """{result name: its section} of the current RESULTS.md, each ending with its ``(from ...)`` line."""
    path = BENCH / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    found = re.finditer(r"^## .*?^\(from bench/results/([\w-]+)\.md\)\n", text, re.M | re.S)
    return {m.group(1): m.group(0) for m in found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the sections with no result file here")
    args = parser.parse_args()
    files = sorted((BENCH / "results").glob("*.md"))
    rank = {name: i for i, name in enumerate(ORDER)}
    header = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/report.py) from bench/results/*.md; each section below is one script's output.",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores",
        f"- memory: {memory_gb()}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, {platform.system()} {platform.release()}",
        "",
    ]
    kept = current_sections() if args.keep else {}
    order = list(kept)  # kept sections stay where they are; a new one goes before the first that ranks after it
    by_name = dict(kept)
    for path in sorted(files, key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem)):
        text = path.read_text().strip()
        text = re.sub(r"^# ", "## ", text, count=1)  # each script's title becomes a section
        by_name[path.stem] = f"{text}\n\n(from bench/results/{path.name})\n"
        if path.stem not in order:
            later = [i for i, n in enumerate(order) if rank.get(n, len(ORDER)) > rank.get(path.stem, len(ORDER))]
            order.insert(later[0] if later else len(order), path.stem)
    sections = [by_name[name] for name in order]
    if not sections:
        sections = ["No results yet: run `make bench`.\n"]
    (BENCH / "RESULTS.md").write_text("\n".join(header) + "\n" + "\n".join(sections))
    print(f"wrote {BENCH / 'RESULTS.md'}: {len(sections)} section(s), {len(files)} from result files here")


if __name__ == "__main__":
    main()
