"""``mm replay``: the three recording formats, torn gzip archives, the JSON summary, exit codes and
errors that name the file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import V1_BOOK, V2_BOOK
from mm_core.adapters.base import FeedSpec
from mm_core.adapters.kraken.v2 import KrakenV2Adapter
from mm_core.cli import main
from mm_core.recordings import FORMAT_CRYPTOFEED, FORMAT_RAW, FORMAT_SDK, RecordingError, open_recording
from mm_core.replay import replay_file

T0 = 1_690_730_998_000_000_000
HEADER = {"exchange": "kraken", "adapter": "kraken_v2", "url": "wss://ws.kraken.com/v2", "symbols": ["BTC/USD"],
          "depth": 10, "channels": ["book"], "price_precision": 1, "qty_precision": 8}
JSON_KEYS = {"messages", "book_updates", "checksums_ok", "checksums_failed", "resyncs", "book_snapshots",
             "unverified_updates", "bad_messages", "events_by_kind", "first_ts_exchange", "last_ts_exchange",
             "final_top", "unreadable_lines"}


def v2_messages() -> list[dict[str, Any]]:
    doc = json.loads(V2_BOOK.read_text())
    init = doc["init"] if isinstance(doc["init"], list) else [doc["init"]]
    return init + doc["updates"]


def archive_lines(msgs: list[dict[str, Any]], header: dict[str, Any] | None = HEADER) -> list[str]:
    lines = [f"#mm_core-raw {json.dumps(header)}\n"] if header is not None else []
    lines += [f"{T0 + i * 1_000_000} {orjson.dumps(m).decode()}\n" for i, m in enumerate(msgs)]
    return lines


def write_members(path: Path, groups: list[list[str]]) -> list[bytes]:
    """One gzip member per group of lines, as the collector's writer flushes them."""
    members = [gzip.compress("".join(g).encode()) for g in groups]
    path.write_bytes(b"".join(members))
    return members


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------- formats


def test_python_kraken_sdk_fixture_replays_with_all_510_checksums_verified() -> None:
    s = replay_file(V2_BOOK)
    assert (s["format"], s["adapter"]) == (FORMAT_SDK, "kraken_v2")
    assert (s["messages"], s["book_snapshots"], s["book_updates"], s["checksums_ok"]) == (510, 1, 509, 510)
    assert s["checksums_failed"] == s["bad_messages"] == s["resyncs"] == 0
    assert s["first_ts_exchange"] == "2023-07-30T15:29:58.343415000Z"
    assert s["last_ts_exchange"] == "2023-07-30T15:30:49.008834000Z"
    assert s["final_top"]["BTC/USD"]["bid"] == 29430.4 and s["final_top"]["BTC/USD"]["source"] == "book"
    assert s["precision"]["BTC/USD"] == {"price": 1, "qty": 8, "source": "known table"}


def test_cryptofeed_capture_replays_with_all_4269_checksums_verified() -> None:
    s = replay_file(V1_BOOK)
    assert (s["format"], s["adapter"]) == (FORMAT_CRYPTOFEED, "kraken_v1")
    assert (s["book_snapshots"], s["book_updates"], s["checksums_ok"], s["checksums_failed"]) == (10, 4269, 4269, 0)
    assert len(s["final_top"]) == 10 and s["events_by_kind"]["heartbeat"] == 31


def test_cryptofeed_local_times_become_capture_times() -> None:
    rec = open_recording(V1_BOOK)
    ts, text = next(iter(rec.frames()))
    assert ts == 1_618_678_132_825_818_800 and '"systemStatus"' in text  # line "1618678132.8258188: {...}"


def test_plain_own_archive_with_header_replays(tmp_path: Path) -> None:
    path = tmp_path / "raw-20230730T15.jsonl"
    path.write_text("".join(archive_lines(v2_messages())))
    s = replay_file(path)
    assert (s["format"], s["compressed"], s["messages"], s["checksums_ok"]) == (FORMAT_RAW, False, 510, 510)
    assert s["header"]["adapter"] == "kraken_v2" and s["unreadable_lines"] == 0


def test_own_archive_without_header_is_detected_from_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(archive_lines(v2_messages(), header=None)))
    s = replay_file(path)
    assert (s["format"], s["adapter"], s["checksums_ok"]) == (FORMAT_RAW, "kraken_v2", 510)


def test_gzip_archive_of_several_members_with_a_torn_tail_reads_everything_complete(tmp_path: Path) -> None:
    lines = archive_lines(v2_messages())
    groups = [lines[i : i + 60] for i in range(0, len(lines), 60)]  # 9 members; the last one is torn
    path = tmp_path / "raw-20230730T15.jsonl.gz"
    members = write_members(path, groups)
    whole = sum(len(g) for g in groups[:-1]) - 1  # frames in the complete members (minus the header)
    path.write_bytes(b"".join(members[:-1]) + members[-1][: len(members[-1]) // 2])  # hard kill
    s = replay_file(path)
    assert s["compressed"] and s["format"] == FORMAT_RAW
    assert whole <= s["messages"] < 510
    assert s["unreadable_lines"] == 1 and s["damaged_gzip_members"] == 1
    assert s["checksums_ok"] == s["messages"] and s["checksums_failed"] == 0


def test_a_torn_member_in_the_middle_does_not_stop_reading(tmp_path: Path) -> None:
    """Collector killed mid-flush, restarted, and appending to the same hour file."""
    msgs = v2_messages()
    clean = KrakenV2Adapter(FeedSpec(symbols=("BTC/USD",)))
    for m in msgs[:301]:
        clean.on_message(orjson.dumps(m), 0)
    book = clean.book("BTC/USD")
    assert book is not None
    resnapshot = {"channel": "book", "type": "snapshot", "data": [{
        "symbol": "BTC/USD", "checksum": msgs[300]["data"][0]["checksum"],
        "asks": [{"price": p, "qty": q} for p, q in book.asks()],
        "bids": [{"price": p, "qty": q} for p, q in book.bids()]}]}
    first = archive_lines(msgs[:201])
    torn = archive_lines(msgs[201:301], header=None)
    after = archive_lines([resnapshot] + msgs[301:], header=None)
    path = tmp_path / "raw.jsonl.gz"
    m1, m2, m3 = (gzip.compress("".join(g).encode()) for g in (first, torn, after))
    path.write_bytes(m1 + m2[: len(m2) // 3] + m3)
    s = replay_file(path)
    assert s["damaged_gzip_members"] == 1 and s["unreadable_lines"] == 1
    assert s["book_snapshots"] == 2 and s["messages"] >= 201 + 1 + 209
    assert s["checksums_failed"] == 0  # frames lost in the tear are covered by the new snapshot


# ---------------------------------------------------------------------------- CLI


def test_json_output_is_one_object_with_the_summary_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli([str(V2_BOOK), "--json"], capsys)
    assert code == 0 and err == ""  # no progress output when stderr is not a terminal
    (line,) = out.strip().splitlines()
    summary = json.loads(line)
    assert JSON_KEYS <= set(summary)
    assert summary["messages"] == 510 and summary["checksums_ok"] == 510 and summary["checksums_failed"] == 0


def test_text_output_names_the_counts_and_the_final_top(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli([str(V1_BOOK)], capsys)
    assert code == 0
    for words in ("checksums verified  4,269", "checksum failures   0", "book updates        4,269",
                  "final top of book", "XBT/CHF", "first exchange ts   2021-04-17T16:48:53"):
        assert words in out


def test_checksum_failures_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msgs = v2_messages()
    msgs[100]["data"][0]["checksum"] ^= 1
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(archive_lines(msgs)))
    code, out, _ = cli([str(path), "--json"], capsys)
    s = json.loads(out)
    assert code == 1 and s["checksums_failed"] == 1 and s["resyncs"] == 1 and s["unverified_updates"] == 409


def test_an_unreadable_file_exits_2_naming_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("\n\nthis is not a recording\n")
    code, out, err = cli([str(path)], capsys)
    assert code == 2 and out == ""
    assert f"{path}:3:" in err and "Traceback" not in err


def test_a_malformed_line_in_an_archive_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = archive_lines(v2_messages()[:10])
    lines.insert(5, "hello world\n")
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(lines))
    code, _, err = cli([str(path)], capsys)
    assert code == 2 and f"{path}:6:" in err and "<ts_capture_ns> <frame text>" in err


def test_a_missing_or_empty_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli([str(tmp_path / "nope.jsonl.gz")], capsys)
    assert code == 2 and "nope.jsonl.gz" in err and "cannot read" in err
    (tmp_path / "empty.jsonl").write_text("")
    code, _, err = cli([str(tmp_path / "empty.jsonl")], capsys)
    assert code == 2 and "empty recording" in err


def test_broken_sdk_json_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "fixture.json"
    path.write_text('{\n  "init": {},\n  "updates": [1, 2,\n')
    with pytest.raises(RecordingError, match=r"fixture.json:\d+: not valid JSON"):
        replay_file(path)


def test_a_v1_symbol_in_a_v2_archive_header_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(archive_lines(v2_messages()[:3], header=dict(HEADER, symbols=["XBT/EUR"]))))
    code, _, err = cli([str(path)], capsys)
    assert code == 2 and "use 'BTC/EUR'" in err


# ---------------------------------------------------------------------------- precision rule


def _relabelled(symbol: str) -> list[dict[str, Any]]:
    msgs = v2_messages()
    for m in msgs:
        m["data"][0]["symbol"] = symbol
    return msgs


def test_header_precision_is_used_for_its_symbols(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(archive_lines(_relabelled("FOO/EUR"), header=dict(HEADER, symbols=["FOO/EUR"]))))
    s = replay_file(path)
    assert s["precision"]["FOO/EUR"] == {"price": 1, "qty": 8, "source": "config"} and s["checksums_ok"] == 510


def test_precision_flags_serve_symbols_the_header_and_table_do_not_know(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(archive_lines(_relabelled("FOO/EUR"), header=None)))
    s = replay_file(path, price_precision=1, qty_precision=8)
    assert s["precision"]["FOO/EUR"]["source"] == "flags" and s["checksums_ok"] == 510
    wrong = replay_file(path, price_precision=2, qty_precision=8)
    assert wrong["checksums_failed"] == 1  # the flags are trusted, and a wrong value shows
    with pytest.raises(ValueError, match="both"):
        replay_file(path, price_precision=1)


def test_without_any_source_the_precision_is_inferred(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(archive_lines(_relabelled("FOO/EUR"), header=None)))
    s = replay_file(path)
    assert s["precision"]["FOO/EUR"] == {"price": 1, "qty": 8, "source": "inferred from the first snapshot"}
    assert s["checksums_ok"] == 510


def test_recording_events_yields_what_replay_counts() -> None:
    """The library form of mm replay: same adapter, same checksums, every event."""
    from conftest import V2_BOOK
    from mm_core.events import BookSnapshot, BookUpdate
    from mm_core.replay import recording_events, replay_file

    events = list(recording_events(V2_BOOK))
    summary = replay_file(V2_BOOK)
    updates = [e for e in events if isinstance(e, BookUpdate)]
    assert len(updates) == summary["book_updates"] == 509
    assert all(e.verified for e in updates)
    assert sum(isinstance(e, BookSnapshot) for e in events) == 1


# ---------------------------------------------------------------------------- what users have


def v1_pair_stream(pair_index: int = 0) -> tuple[list, list]:
    """One pair's v1 snapshot and its checksummed updates, from the real cryptofeed recording."""
    snapshot, updates = None, []
    for line in V1_BOOK.read_text().splitlines():
        ts, sep, text = line.partition(": ")
        if not sep or not ts.replace(".", "").isdigit() or not text.startswith("["):
            continue
        msg = json.loads(text)
        if snapshot is None:
            if isinstance(msg[1], dict) and "as" in msg[1]:
                if pair_index == 0:
                    snapshot = msg
                else:
                    pair_index -= 1
        elif msg[-1] == snapshot[-1] and msg[0] == snapshot[0]:
            updates.append(msg)
    assert snapshot is not None and len(updates) > 50
    return snapshot, updates


def test_sdk_fixture_whose_init_is_one_v1_message_is_read_as_one_message(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """{"init": [336, {"as": [...], "bs": [...]}, "book-10", "XBT/USD"], "updates": [...]}: the init
    is ONE v1 message (an array that starts with its channel id), not four."""
    snapshot, updates = v1_pair_stream()
    path = tmp_path / "fixture-v1.json"
    path.write_text(json.dumps({"init": snapshot, "updates": updates}))
    s = replay_file(path)
    assert (s["format"], s["adapter"]) == (FORMAT_SDK, "kraken_v1")
    assert s["messages"] == 1 + len(updates) and s["book_snapshots"] == 1
    assert s["checksums_ok"] == len(updates) and s["checksums_failed"] == 0 and s["bad_messages"] == 0
    assert s["ok"] and s["final_top"][snapshot[-1]]["source"] == "book"
    code, out, _ = cli([str(path)], capsys)
    assert code == 0 and f"OK: all {len(updates):,} checksums verified" in out
    # a list of messages is still several messages
    path.write_text(json.dumps({"init": [snapshot], "updates": updates}))
    assert replay_file(path)["checksums_ok"] == len(updates)


def test_book_updates_none_of_which_verify_are_a_failure_not_ok(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Updates without their snapshot cannot be verified: exit 1, and the closing line says so."""
    _, updates = v1_pair_stream()
    path = tmp_path / "no-snapshot.json"
    path.write_text(json.dumps({"init": [], "updates": updates}))
    code, out, _ = cli([str(path)], capsys)
    assert code == 1
    last = out.strip().splitlines()[-1]
    assert last.strip().startswith("FAIL:") and "bad message" in last and "OK" not in last


def test_older_cryptofeed_log_with_a_configuration_line_is_read(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Older cryptofeed logs start with the recorder's configuration line (as in the Bitstamp
    recordings' BITSTAMP.0) and hold connection lines again after a reconnect: both are skipped."""
    lines = V1_BOOK.read_text().splitlines()
    config = 'configuration: {"trades":["XBT-CHF"],"l2_book":["XBT-CHF","ADA-XBT"]}'
    mid = len(lines) // 2
    reconnect = "wss://ws.kraken.com <-> " + lines[mid].split(":", 1)[0]
    path = tmp_path / "KRAKEN.ws.50.0"
    path.write_text("\n".join([config, *lines[:mid], reconnect, *lines[mid:]]) + "\n")
    s = replay_file(path)
    assert s["format"] == FORMAT_CRYPTOFEED and s["skipped_lines"] == 4  # config, 2 header lines, reconnect
    assert (s["checksums_ok"], s["checksums_failed"]) == (4269, 0)
    code, out, _ = cli([str(path)], capsys)
    assert code == 0 and "OK: all 4,269 checksums verified" in out


def test_a_truncated_gzip_archive_exits_1_and_says_what_failed(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    lines = archive_lines(v2_messages())
    path = tmp_path / "raw-20230730T15.jsonl.gz"
    members = write_members(path, [lines[i : i + 60] for i in range(0, len(lines), 60)])
    path.write_bytes(b"".join(members[:-1]) + members[-1][: len(members[-1]) // 2])  # hard kill
    code, out, _ = cli([str(path)], capsys)
    assert code == 1
    last = out.strip().splitlines()[-1].strip()
    assert last.startswith("FAIL:") and "1 damaged gzip member(s)" in last and "unreadable line" in last
    assert "OK" not in out.split("events by type")[-1]
    code, out, _ = cli([str(path), "--json"], capsys)
    s = json.loads(out)
    assert code == 1 and not s["ok"] and any("damaged gzip" in f for f in s["failures"])


def test_a_bad_message_alone_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = archive_lines(v2_messages())
    lines.insert(300, f"{T0 + 299_500_000} {{\"channel\":\"book\",\"type\":\"update\",\"data\":\n")
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(lines))
    code, out, _ = cli([str(path), "--json"], capsys)
    s = json.loads(out)
    assert code == 1 and s["bad_messages"] >= 1 and any("bad message" in f for f in s["failures"])
