"""``mm replay FILE``: run a recorded feed through the adapter and its books, and say what happened.

Why: a recording is only worth keeping if it re-parses into a *verified* book. Replay answers
"does every checksum still match?" (or, on a venue without checksums, "did the book stay in sync
and uncrossed?"), "how many frames were bad?", "what did the book look like at the end?" for the
project's own raw archives and for third-party captures (cryptofeed lines, SDK fixtures) -- see
:mod:`mm_core.recordings` for the formats. Which venue's adapter reads the file, and how it finds a
pair's precision where a checksum needs it, is the venue's business
(:meth:`mm_core.adapters.base.VenueRules.replay_adapter`); ``--price-precision``/``--qty-precision``
are handed to it as a fallback. The summary names the precision source used per symbol.

``crossed_books`` counts the moments a book built from the file was crossed or locked (best bid at
or above best ask after a message), for every venue; any is a failure.

Exit status: 0 only when everything in the file was read and verified; 1 when anything failed -- a
checksum mismatch, a re-snapshot that disagreed, a crossed book, a bad message, a damaged gzip
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

from mm_core.adapters import adapter_names, default_venue, venue_rules
from mm_core.events import BadMessage, Event, TopOfBook
from mm_core.recordings import Recording, RecordingError, open_recording
from mm_core.timestamps import format_ns_iso
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
    rec, name, feed, frame_iter = _open(path, adapter, price_precision, qty_precision)
    first_ts: Optional[int] = None
    last_ts: Optional[int] = None
    tops: dict[str, TopOfBook] = {}
    crossed: dict[str, int] = {}
    bad_examples: list[dict[str, Any]] = []
    on_message = feed.on_message
    frames = 0
    for ts_capture, text in frame_iter:
        frames += 1
        for ev in on_message(text, ts_capture):
            ts = ev.ts_exchange
            if ts is not None:
                if first_ts is None or ts < first_ts:
                    first_ts = ts
                if last_ts is None or ts > last_ts:
                    last_ts = ts
            if ev.__class__ is TopOfBook:
                if ev.source == "book" and ev.bid >= ev.ask:  # type: ignore[attr-defined]
                    crossed[ev.symbol] = crossed.get(ev.symbol, 0) + 1
                prev = tops.get(ev.symbol)
                if prev is None or ev.source == "book" or prev.source != "book":  # type: ignore[attr-defined]
                    tops[ev.symbol] = ev  # type: ignore[assignment]
            elif ev.__class__ is BadMessage and len(bad_examples) < _BAD_EXAMPLES:
                bad_examples.append({"reason": ev.reason, "text": ev.text})  # type: ignore[attr-defined]
        if progress is not None and frames % 4096 == 0:
            progress(rec, frames)
    return _summary(rec, name, feed, first_ts, last_ts, tops, bad_examples, crossed)


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
    _, _, feed, frames = _open(path, adapter, price_precision, qty_precision)
    for ts_capture, text in frames:
        yield from feed.on_message(text, ts_capture)


def _open(path: str | Path, adapter: Optional[str], price_precision: Optional[int],
          qty_precision: Optional[int]) -> tuple[Recording, str, Any, Iterator[tuple[int, str]]]:
    """Open a recording; choose its adapter (flag, archive header, the venues' detection, else the
    default venue's first); build it the venue's way; frames with the venue's companions merged in."""
    if (price_precision is None) != (qty_precision is None):
        raise ReplayError("give both --price-precision and --qty-precision, or neither")
    rec = open_recording(path)
    name = adapter or _header_adapter(rec) or rec.protocol or next(iter(default_venue().adapters))
    owners = adapter_names()
    if name not in owners:
        raise ReplayError(f"{rec.path}: unknown adapter {name!r}; known: {', '.join(owners)}")
    venue = venue_rules(owners[name])
    header = rec.header
    symbols = header.get("symbols") or []
    if isinstance(symbols, str):
        header = {**header, "symbols": [symbols]}
    elif not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        raise ReplayError(f"{rec.path}:1: archive header 'symbols' is not a list of strings")
    fallback = (price_precision, qty_precision) if price_precision is not None else None
    try:
        feed = venue.replay_adapter(name, header, fallback)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ReplayError(f"{rec.path}:1: archive header: {exc}") from None
    return rec, name, feed, venue.recording_frames(rec.path, rec.frames())


def _header_adapter(rec: Recording) -> Optional[str]:
    adapter = rec.header.get("adapter")
    return adapter if isinstance(adapter, str) else None


def _summary(rec: Recording, name: str, feed: Any, first_ts: Optional[int], last_ts: Optional[int],
             tops: dict[str, TopOfBook], bad_examples: list[dict[str, Any]],
             crossed: dict[str, int]) -> dict[str, Any]:
    s = feed.stats
    precision: dict[str, Any] = {}
    if hasattr(feed, "precision") and hasattr(feed, "symbols"):
        for symbol in feed.symbols():
            p = feed.precision(symbol)
            if p is not None:
                precision[symbol] = {"price": p[0], "qty": p[1], "source": p[2]}
    checks = s.checksums_ok + s.checksums_failed
    failures = replay_failures(s, rec, sum(crossed.values()))
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
        "verified_updates": s.verified_updates,
        "snapshot_checks_ok": s.snapshot_checks_ok,
        "snapshot_checks_failed": s.snapshot_checks_failed,
        "crossed_books": sum(crossed.values()),
        "crossed_by_symbol": dict(sorted(crossed.items())),
        "time_gaps": s.time_gaps,
        "stale_updates": s.stale_updates,
        "books_built": sum(1 for ev in tops.values() if ev.source == "book"),
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


def replay_failures(s: Any, rec: Recording, crossed: int = 0) -> list[str]:
    """What went wrong in a replay, one phrase each; empty = every frame read and every book verified."""
    out: list[str] = []
    if s.checksums_failed:
        out.append(f"{s.checksums_failed:,} checksum mismatch(es)")
    mismatches = s.events_by_kind.get("book_mismatch", 0)
    if mismatches:
        out.append(f"{mismatches:,} book integrity failure(s) ({s.snapshot_checks_failed:,} re-snapshot(s) that "
                   f"disagreed, the rest crossed books or exchange time going backwards)")
    if crossed:
        out.append(f"{crossed:,} crossed or locked book moment(s)")
    if s.bad_messages:
        out.append(f"{s.bad_messages:,} bad message(s)")
    if rec.damaged_members:
        out.append(f"{rec.damaged_members:,} damaged gzip member(s)")
    if rec.unreadable_lines:
        out.append(f"{rec.unreadable_lines:,} unreadable line(s) (first at line {rec.first_unreadable_line})")
    if s.unverified_updates:
        out.append(f"{s.unverified_updates:,} book update(s) left unverified")
    if s.book_updates and not s.checksums_ok and not s.verified_updates:
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
    p.add_argument("file", type=Path, help="raw archive (.jsonl[.gz]), cryptofeed capture (a venue may read "
                                             "its companion files beside it) or SDK fixture")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--adapter", choices=sorted(adapter_names()), help="protocol (default: from the file)")
    p.add_argument("--price-precision", type=int, metavar="N",
                   help="price decimals for checksums of pairs not in the header/known table")
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
        f"  book updates        {s['book_updates']:,}" + (f" (+{s['stale_updates']:,} at or before their snapshot, "
                                                          "dropped)" if s["stale_updates"] else ""),
        f"  checksums verified  {s['checksums_ok']:,}",
        f"  checksum failures   {s['checksums_failed']:,}",
        f"  unverified updates  {s['unverified_updates']:,}",
        f"  books built         {s['books_built']:,}",
        f"  crossed books       {s['crossed_books']:,}",
        f"  re-snapshot checks  {s['snapshot_checks_ok']:,} ok, {s['snapshot_checks_failed']:,} differed",
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
        verdict = f"OK: all {s['checksums_ok']:,} checksums verified, 0 crossed"
    elif s["verified_updates"]:
        verdict = (f"OK: {s['verified_updates']:,} book updates applied in sync from the snapshots, 0 crossed, "
                   f"{s['trades']:,} trades")
    else:
        verdict = "OK: no checksummed book messages in this file"
    lines.append(f"  {verdict}")
    return "\n".join(lines) + "\n"
