"""`make bench`: run every benchmark in turn; each writes benchmarks/results/<name>.json and its
section of BENCHMARKS.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
BENCHMARKS = ["bench_rendering.py", "bench_sim.py", "bench_data.py"]

if __name__ == "__main__":
    for script in BENCHMARKS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(TOOLS / script), *sys.argv[1:]], check=True)
