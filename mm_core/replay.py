"""``mm replay FILE``: run a recorded feed through the adapter and its books, and say what happened.

Why: a recording is only worth keeping if it re-parses into a *verified* book. Replay answers
"does every checksum still match?", "how many frames were bad?", "what did the book look like at
the end?" for the project's own raw archives and for third-party captures (cryptofeed lines,
python-kraken-sdk fixtures) -- see :mod:`mm_core.recordings` for the formats.

Instrument precision (WS v2 checksums are computed from numbers, so the pair's price/qty
precision matters), first hit wins:

1. the archive header's ``price_precision``/``qty_precision`` (for the header's symbols),
2. the adapter's table of known instruments (BTC/EUR, BTC/USD: 1 and 8),
3. ``--price-precision``/``--qty-precision``,
4. inference from the first snapshot (the smallest precisions that reproduce its checksum).

The summary names the source used per symbol. Exit status: 0 only when everything in the file was
read and verified; 1 when anything failed -- a checksum mismatch, a bad message, a damaged gzip
member or unreadable line, book updates left unverified, or book updates none of which could be
verified -- and the closing line (``failures`` in ``--json``) says which; 2 when the file could not
be read at all (the message names the file and line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import orjson

from mm_core.adapters.base import FeedSpec
from mm_core.adapters.kraken.instruments import instrument_with_precision
from mm_core.adapters.kraken.v1 import KrakenV1Adapter
from mm_core.adapters.kraken.v2 import KrakenV2Adapter
from mm_core.adapters.kraken.wire import V2_DEPTHS, format_ns_iso
from mm_core.events import BadMessage, Event, TopOfBook
from mm_core.recordings import Recording, RecordingError, open_recording

ADAPTER_NAMES = ("kraken_v2", "kraken_v1")
_BAD_EXAMPLES = 5


class ReplayError(ValueError):
    """The recording cannot be replayed (unreadable, or its header names something invalid)."""


def replay_file(
    path: str | Path,
    *,
    adapter: Optional[str] = None,
    price_precision: Optional[int] = None,
    qty_precision: Optional[int] = None,
    progress: Optional[Callable[[Recording, int], None]] = None,
) -> dict[str, Any]:
    """Replay one recording; return the summary (the same dict ``--json`` prints).

    Raises :class:`ReplayError` (a ValueError; RecordingError is one too) naming the file and the
    line when the file cannot be read.
    """
    rec, name, feed = _open(path, adapter, price_precision, qty_precision)
    first_ts: Optional[int] = None
    last_ts: Optional[int] = None
    tops: dict[str, TopOfBook] = {}
    bad_examples: list[dict[str, Any]] = []
    on_message = feed.on_message
    frames = 0
    for ts_capture, text in rec.frames():
        frames += 1
        for ev in on_message(text, ts_capture):
            ts = ev.ts_exchange
            if ts is not None:
                if first_ts is None or ts < first_ts:
                    first_ts = ts
                if last_ts is None or ts > last_ts:
                    last_ts = ts
            if ev.__class__ is TopOfBook:
                prev = tops.get(ev.symbol)
                if prev is None or ev.source == "book" or prev.source != "book":  # type: ignore[attr-defined]
                    tops[ev.symbol] = ev  # type: ignore[assignment]
            elif ev.__class__ is BadMessage and len(bad_examples) < _BAD_EXAMPLES:
                bad_examples.append({"reason": ev.reason, "text": ev.text})  # type: ignore[attr-defined]
        if progress is not None and frames % 4096 == 0:
            progress(rec, frames)
    return _summary(rec, name, feed, first_ts, last_ts, tops, bad_examples)


def recording_events(
    path: str | Path,
    *,
    adapter: Optional[str] = None,
    price_precision: Optional[int] = None,
    qty_precision: Optional[int] = None,
) -> Iterator[Event]:
    """Every canonical event of a recording, exactly as the collector's adapter would emit them.

    The library form of ``mm replay`` for research and backtests: the same format detection, the
    same adapter choice and precision rules, the same checksum verification.
    """
    rec, _, feed = _open(path, adapter, price_precision, qty_precision)
    for ts_capture, text in rec.frames():
        yield from feed.on_message(text, ts_capture)


def _open(path: str | Path, adapter: Optional[str], price_precision: Optional[int],
          qty_precision: Optional[int]) -> tuple[Recording, str, Any]:
    """Open a recording and build the adapter that replays it (format, adapter and precision rules)."""
    if (price_precision is None) != (qty_precision is None):
        raise ReplayError("give both --price-precision and --qty-precision, or neither")
    rec = open_recording(path)
    name = adapter or _header_adapter(rec) or rec.protocol or "kraken_v2"
    if name not in ADAPTER_NAMES:
        raise ReplayError(f"{rec.path}: unknown adapter {name!r}; known: {', '.join(ADAPTER_NAMES)}")
    return rec, name, _make_adapter(rec, name, price_precision, qty_precision)


def _header_adapter(rec: Recording) -> Optional[str]:
    adapter = rec.header.get("adapter")
    return adapter if isinstance(adapter, str) else None


def _make_adapter(rec: Recording, name: str, price_precision: Optional[int],
                  qty_precision: Optional[int]) -> KrakenV1Adapter | KrakenV2Adapter:
    header = rec.header
    symbols = header.get("symbols") or []
    if isinstance(symbols, str):
        symbols = [symbols]
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        raise ReplayError(f"{rec.path}:1: archive header 'symbols' is not a list of strings")
    depth = header.get("depth")
    if name == "kraken_v1":
        return KrakenV1Adapter(FeedSpec(symbols=()))
    instruments = {}
    hp, hq = header.get("price_precision"), header.get("qty_precision")
    if isinstance(hp, int) and isinstance(hq, int):
        instruments = {s: instrument_with_precision(s, hp, hq) for s in symbols}
    try:
        spec = FeedSpec(
            symbols=tuple(symbols),
            book_depth=depth if isinstance(depth, int) and depth in V2_DEPTHS else 10,
            instruments=instruments,
        )
        fallback = (price_precision, qty_precision) if price_precision is not None else None
        return KrakenV2Adapter(spec, infer_depth=not isinstance(depth, int), fallback_precision=fallback)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ReplayError(f"{rec.path}:1: archive header: {exc}") from None


def _summary(rec: Recording, name: str, feed: Any, first_ts: Optional[int], last_ts: Optional[int],
             tops: dict[str, TopOfBook], bad_examples: list[dict[str, Any]]) -> dict[str, Any]:
    s = feed.stats
    precision: dict[str, Any] = {}
    if isinstance(feed, KrakenV2Adapter):
        for symbol in feed.symbols():
            p = feed.precision(symbol)
            if p is not None:
                precision[symbol] = {"price": p[0], "qty": p[1], "source": p[2]}
    checks = s.checksums_ok + s.checksums_failed
    failures = replay_failures(s, rec)
    return {
        "ok": not failures,
        "failures": failures,
        "file": str(rec.path),
        "format": rec.format,
        "adapter": name,
        "compressed": rec.compressed,
        "messages": s.messages,
        "events_by_kind": dict(sorted(s.events_by_kind.items())),
        "book_snapshots": s.book_snapshots,
        "book_updates": s.book_updates,
        "checksums_ok": s.checksums_ok,
        "checksums_failed": s.checksums_failed,
        "checksums_verified_share": (s.checksums_ok / checks) if checks else None,
        "unverified_updates": s.unverified_updates,
        "resyncs": s.resyncs,
        "bad_messages": s.bad_messages,
        "bad_message_examples": bad_examples,
        "trades": s.trades,
        "tops": s.tops,
        "heartbeats": s.heartbeats,
        "first_ts_exchange": format_ns_iso(first_ts) if first_ts is not None else None,
        "last_ts_exchange": format_ns_iso(last_ts) if last_ts is not None else None,
        "final_top": {
            sym: {"bid": ev.bid, "bid_qty": ev.bid_qty, "ask": ev.ask, "ask_qty": ev.ask_qty,
                  "source": ev.source,
                  "ts_exchange": format_ns_iso(ev.ts_exchange) if ev.ts_exchange is not None else None}
            for sym, ev in sorted(tops.items())
        },
        "precision": precision,
        "unreadable_lines": rec.unreadable_lines,
        "first_unreadable_line": rec.first_unreadable_line,
        "damaged_gzip_members": rec.damaged_members,
        "skipped_lines": rec.skipped_lines,
        "header": rec.header,
    }


def replay_failures(s: Any, rec: Recording) -> list[str]:
    """What went wrong in a replay, one phrase each; empty = every frame read and every book verified."""
    out: list[str] = []
    if s.checksums_failed:
        out.append(f"{s.checksums_failed:,} checksum mismatch(es)")
    if s.bad_messages:
        out.append(f"{s.bad_messages:,} bad message(s)")
    if rec.damaged_members:
        out.append(f"{rec.damaged_members:,} damaged gzip member(s)")
    if rec.unreadable_lines:
        out.append(f"{rec.unreadable_lines:,} unreadable line(s) (first at line {rec.first_unreadable_line})")
    if s.unverified_updates:
        out.append(f"{s.unverified_updates:,} book update(s) left unverified")
    if s.book_updates and not s.checksums_ok:
        out.append(f"none of {s.book_updates:,} book updates could be verified")
    return out


# ---------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mm replay`` to the ``mm`` command."""
    p = subparsers.add_parser(
        "replay",
        help="run a recorded capture through the adapter and book; summarize",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="exit codes: 0 everything read and verified, 1 something failed (the closing line says "
               "what), 2 unreadable file",
    )
    p.add_argument("file", type=Path, help="raw archive (.jsonl[.gz]), cryptofeed capture or SDK fixture")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--adapter", choices=ADAPTER_NAMES, help="protocol (default: from the file)")
    p.add_argument("--price-precision", type=int, metavar="N",
                   help="price decimals for v2 checksums of pairs not in the header/known table")
    p.add_argument("--qty-precision", type=int, metavar="N", help="quantity decimals (with --price-precision)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``mm replay``: 0 = everything read and verified, 1 = something failed (named), 2 = unreadable."""
    bar = _FileBar(enabled=not args.json)
    try:
        summary = replay_file(args.file, adapter=args.adapter, price_precision=args.price_precision,
                              qty_precision=args.qty_precision, progress=bar.show)
    except (RecordingError, ReplayError) as exc:
        bar.close()
        print(f"mm replay: {exc}", file=sys.stderr)
        return 2
    bar.close()
    if args.json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        sys.stdout.write(format_summary(summary))
    return 0 if summary["ok"] else 1


class _FileBar:
    """Progress through a big archive: KiB read of the file, rate and ETA (a terminal only, not --json)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._done = 0

    def show(self, rec: Recording, frames: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from mm_core.progress import TaskBar

            self._bar = TaskBar(f"replay {rec.path.name}", max(1, rec.size // 1024), True, unit="KiB")
            self.enabled = self._bar.enabled
        now = min(rec.bytes_read // 1024, self._bar.total)
        if now > self._done:
            self._bar.step(now - self._done)
            self._done = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def format_summary(s: dict[str, Any]) -> str:
    """The human-readable report of :func:`replay_file`'s summary."""
    lines = [
        f"{s['file']}  ({s['format']}, {s['adapter']}{', gzip' if s['compressed'] else ''})",
        f"  messages            {s['messages']:,}",
        f"  book snapshots      {s['book_snapshots']:,}",
        f"  book updates        {s['book_updates']:,}",
        f"  checksums verified  {s['checksums_ok']:,}",
        f"  checksum failures   {s['checksums_failed']:,}",
        f"  unverified updates  {s['unverified_updates']:,}",
        f"  resyncs             {s['resyncs']:,}",
        f"  bad messages        {s['bad_messages']:,}",
        f"  first exchange ts   {s['first_ts_exchange'] or '-'}",
        f"  last exchange ts    {s['last_ts_exchange'] or '-'}",
    ]
    if s["unreadable_lines"] or s["damaged_gzip_members"]:
        lines.append(f"  unreadable lines    {s['unreadable_lines']:,} (first at line {s['first_unreadable_line']}), "
                     f"damaged gzip members {s['damaged_gzip_members']}")
    if s["skipped_lines"]:
        lines.append(f"  skipped lines       {s['skipped_lines']:,} (recorder header, configuration, connection lines)")
    lines.append("  events by type:")
    lines += [f"    {k:20s}{v:,}" for k, v in s["events_by_kind"].items()]
    for ex in s["bad_message_examples"]:
        lines.append(f"  bad: {ex['reason']}  <- {ex['text'][:80]}")
    if s["final_top"]:
        lines.append("  final top of book:")
        for sym, t in s["final_top"].items():
            prec = s["precision"].get(sym)
            note = f"  [precision {prec['price']}/{prec['qty']} from {prec['source']}]" if prec else ""
            lines.append(f"    {sym:12s} {t['bid_qty']!r} @ {t['bid']!r}  |  {t['ask']!r} x {t['ask_qty']!r}"
                         f"  ({t['source']}, {t['ts_exchange'] or 'no exchange ts'}){note}")
    if s["failures"]:
        verdict = "FAIL: " + "; ".join(s["failures"]) + f" ({s['checksums_ok']:,} checksums verified)"
    elif s["checksums_ok"]:
        verdict = f"OK: all {s['checksums_ok']:,} checksums verified"
    else:
        verdict = "OK: no checksummed book messages in this file"
    lines.append(f"  {verdict}")
    return "\n".join(lines) + "\n"
