"""The user's collector command: ``python mm_core/collector.py --symbol BTC/EUR --out F.csv ...``.

Same as ``mm collect``. Run as a script, Python puts this file's folder first on ``sys.path``,
where mm_core's own modules could shadow the standard library; the shim below puts the repository
root there instead, so ``import mm_core`` works with or without installing the package.
"""

if __name__ == "__main__" and not __package__:
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from mm_core.capture.collector import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
