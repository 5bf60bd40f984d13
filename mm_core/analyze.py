"""``python mm_core/analyze.py --file F.csv --normal-max-ms 20 --degraded-max-ms 80``: the user's command.

Same code and options as ``mm analyze`` (see :mod:`mm_core.latency`). Run as a script, Python puts
``mm_core/`` itself first on ``sys.path``; the shim swaps it for the repository root so that
``import mm_core`` works and no module of ours can shadow a standard-library module.
"""

if __name__ == "__main__" and not __package__:
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from mm_core.latency import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(prog="analyze.py"))
