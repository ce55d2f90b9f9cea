"""`make bench`: every benchmark in this folder, one after the other, with their tables.

    python bench/run_all.py

The figures go into the README by hand, with the machine they were measured on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Order: cheapest first, so a quick look gets the local figures before the fleet's.
BENCHES = ("bench_local.py", "bench_state.py", "bench_progress.py", "bench_dashboard.py", "bench_fleet.py",
           # the speed table (README "Speed"): every row side by side, with targets and spreads
           "bench_speed.py")


def main() -> int:
    failed = 0
    for name in BENCHES:
        print(f"\n=== {name}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / name)])
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
