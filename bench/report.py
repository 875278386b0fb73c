"""Assemble ``bench/RESULTS.md`` from ``bench/results/*.md`` under a header naming the machine.

    .venv/bin/python bench/report.py

Run by ``make bench`` after every benchmark script. The header gives the CPU
model (/proc/cpuinfo), cores, memory (/proc/meminfo), Python and numpy
versions and the date; each result file follows as its own section, in the
order the benchmarks run (others after, by name).
"""

from __future__ import annotations

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
    "soak",
]


def memory_gb() -> str:
    try:
        kb = int(re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M).group(1))
    except (OSError, AttributeError):
        return "unknown"
    return f"{kb / 1024 / 1024:.1f} GB"


def main() -> None:
    files = sorted((BENCH / "results").glob("*.md"))
    rank = {name: i for i, name in enumerate(ORDER)}
    files.sort(key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem))
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
    sections = []
    for path in files:
        text = path.read_text().strip()
        text = re.sub(r"^# ", "## ", text, count=1)  # each script's title becomes a section
        sections.append(f"{text}\n\n(from bench/results/{path.name})\n")
    if not sections:
        sections = ["No results yet: run `make bench`.\n"]
    (BENCH / "RESULTS.md").write_text("\n".join(header) + "\n" + "\n".join(sections))
    print(f"wrote {BENCH / 'RESULTS.md'} from {len(files)} result file(s)")


if __name__ == "__main__":
    main()
