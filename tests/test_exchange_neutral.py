"""The scaling rule, enforced: only ``mm_core/adapters/`` and the simulator's venue dialects name an
exchange. Everything else -- capture, store, quality, research, backtest, strategy, trading -- gets
venue rules as plain values through the seam (:mod:`mm_core.adapters`), so adding a venue never
touches it.

The rule is strict on purpose: code *and* text (docstrings, comments, strings) count, case-insensitive,
so a venue's rule cannot hide in a comment that someone later turns into code. A venue module says
"Kraken"; a core module says "the venue".
"""

from __future__ import annotations

import re
from pathlib import Path

from mm_core.adapters import known_venues

ROOT = Path(__file__).resolve().parents[1] / "mm_core"
ALLOWED = (ROOT / "adapters", ROOT / "simexchange")
# every venue the package knows, and the exchanges a contributor is most likely to name next
NAMES = sorted({*known_venues(), "kraken", "bitstamp", "binance", "coinbase", "bitfinex", "okx", "bybit",
                "deribit", "gemini"})
PATTERN = re.compile("|".join(NAMES), re.IGNORECASE)


def hits(root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        if any(path.is_relative_to(a) for a in ALLOWED):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if PATTERN.search(line):
                out.append(f"{path.relative_to(root.parent)}:{n}: {line.strip()}")
    return out


def test_no_module_outside_the_adapters_and_the_simulator_dialects_names_an_exchange() -> None:
    found = hits()
    assert not found, "venue names outside adapters/ and simexchange/:\n" + "\n".join(found)


def test_the_rule_catches_a_name_in_code_and_in_text(tmp_path: Path) -> None:
    (tmp_path / "fees.py").write_text('TIERS = {"kraken": 0.25}\n')
    (tmp_path / "engine.py").write_text('"""Throttled by Bitstamp\'s counter."""\n')
    (tmp_path / "clean.py").write_text('"""The venue\'s rate counter."""\n')
    assert [h.split(":")[0].rsplit("/", 1)[-1] for h in hits(tmp_path)] == ["engine.py", "fees.py"]


def test_every_venue_package_is_found_by_its_config_name() -> None:
    assert "kraken" in known_venues()
    for name in known_venues():
        assert (ROOT / "adapters" / name / "__init__.py").is_file()
