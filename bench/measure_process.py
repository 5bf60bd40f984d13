"""Run a command and write its wall time and peak resident memory to a JSON file.

Why a separate launcher: the kernel's peak-RSS figure for a process (``ru_maxrss``) starts from the
memory of the process that forked it -- a benchmark parent that has imported numpy, numba and the
data would lend every child its own size. This small process forks the command instead, so the
figure is the command's own; the wall time is taken here too, around the command alone.

    python bench/measure_process.py STATS.json CMD [ARGS...]   # CMD's stdout/stderr pass through
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> int:
    stats, cmd = sys.argv[1], sys.argv[2:]
    t = time.perf_counter()
    p = subprocess.Popen(cmd)
    rss = None
    if hasattr(os, "wait4"):
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        code = os.waitstatus_to_exitcode(status)
        rss = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS
    else:  # Windows: no per-process peak RSS without extra packages
        code = p.wait()
        wall = time.perf_counter() - t
    with open(stats, "w", encoding="utf-8") as f:
        json.dump({"wall_s": wall, "peak_rss_mb": rss, "returncode": code}, f)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
