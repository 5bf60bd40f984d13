"""``python -m mm_core`` = the ``mm`` command."""

from mm_core.cli import main

raise SystemExit(main())
