"""The opt-in Prometheus endpoint (--metrics-port): live counters and the feed-age histogram."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import V2_BOOK
from mm_core.capture.collector import AGE_BUCKETS_MS, Collector
from mm_core.capture.layout import read_summary
from mm_core.capture.wsclient import CLIENTS
from mm_core.config import load_config
from scripted_exchange import Script, ScriptedExchange, load_v2_recording
from test_collector import fast_config


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.mark.parametrize("client", ["websockets", "picows"])
def test_metrics_endpoint_serves_message_count_and_age_histogram_while_running(tmp_path: Path, client: str) -> None:
    if client not in CLIENTS:
        pytest.skip(f"{client} is not installed (optional WebSocket client)")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    cfg = load_config(fast_config(tmp_path, watchdog_silence_s=10))
    seen: list[str] = []  # scrapes taken while the collector runs
    running = threading.Event()

    def scrape() -> None:
        while not running.is_set():
            time.sleep(0.05)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and running.is_set():
            text = fetch(url)
            if text is not None:
                seen.append(text)
                vals = samples(text)
                if vals.get(("mm_messages_total", ()), 0) > 0 and vals.get(("mm_feed_age_ms_count", ()), 0) > 0:
                    return
            time.sleep(0.1)

    with ScriptedExchange(Script(load_v2_recording(V2_BOOK))) as ex:
        col = Collector(cfg, tmp_path / "run" / "F.csv", url=ex.url, max_seconds=4.0, quiet=True,
                        metrics_port=port, ws_client=client)
        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        running.set()
        try:
            code = col.run()
        finally:
            running.clear()
            scraper.join(10)
    assert code == 0
    assert col.ws_client == client
    assert seen, f"no scrape of {url} succeeded while the collector ran"
    vals = samples(seen[-1])
    assert vals[("mm_messages_total", ())] > 0
    assert ("mm_reconnects_total", ()) in vals
    # one cumulative bucket per configured bound, plus +Inf, and they are non-decreasing
    buckets = [vals[("mm_feed_age_ms_bucket", (("le", str(float(b))),))] for b in AGE_BUCKETS_MS]
    buckets.append(vals[("mm_feed_age_ms_bucket", (("le", "+Inf"),))])
    assert buckets == sorted(buckets)
    assert buckets[-1] == vals[("mm_feed_age_ms_count", ())] > 0
    assert vals[("mm_feed_age_ms_sum", ())] > 0
    # the final counts match the run's own summary (same frames, same samples)
    s = read_summary(tmp_path / "run")
    assert 0 < vals[("mm_messages_total", ())] <= s["messages"]
    assert vals[("mm_feed_age_ms_count", ())] <= s["samples"]
    # the endpoint lives as long as the run: the port is free again afterwards
    assert fetch(url) is None
