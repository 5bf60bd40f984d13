"""``python mm_core/data_quality_check.py --file F.csv --strict``: the user's command.

Same code and options as ``mm qa`` (see :mod:`mm_core.quality`). Run as a script, Python puts
``mm_core/`` itself first on ``sys.path``; the shim swaps it for the repository root so that
``import mm_core`` works and no module of ours can shadow a standard-library module.
"""

if __name__ == "__main__" and not __package__:
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from mm_core.quality import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(prog="data_quality_check.py"))
