"""``sparq demo`` (what ``make demo`` runs) from a cold Verilator cache: its wall time per phase and its summary.

Runs ``python -m sparq demo`` in a subprocess with ``SPARQ_CACHE`` pointing at an empty temporary directory, so
both Verilator models are built from scratch, as on a fresh clone (the Python environment is not reinstalled). The
machine's load average is recorded next to the times, because the demo shares the cores with whatever else runs::

    .venv/bin/python bench/demo.py                 # writes bench/results/demo.json
    .venv/bin/python bench/demo.py --images 50
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="digits test images on each RTL (default 20)")
    parser.add_argument("--json", default=str(RESULTS / "demo.json"), help="where to write the result")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sparq-demo-bench-") as tmp:
        env = {**os.environ, "SPARQ_CACHE": str(Path(tmp) / "build")}
        workspace = Path(tmp) / "demo"
        load_before = os.getloadavg()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sparq", "demo", "--images", str(args.images), "--out", str(workspace)],
                       env=env, check=True)
        wall = time.perf_counter() - started
        demo = json.loads((workspace / "demo.json").read_text())
    result = {"wall_seconds": wall, "cpu_count": os.cpu_count(), "load_average_before": load_before,
              "load_average_after": os.getloadavg(), **demo}
    print(f"\nsparq demo, cold Verilator cache: {wall:.0f} s wall "
          f"(load average {load_before[0]:.1f} before, {result['load_average_after'][0]:.1f} after, "
          f"{os.cpu_count()} cores)")
    for name, seconds in demo["phases"].items():
        print(f"  {name:<20} {seconds:6.1f} s  {100 * seconds / wall:4.0f}%")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
