"""The run's event log: one JSON object per feed-health event, flushed as soon as it is written.

Health events are rare (connects, reconnects, silences, checksum mismatches, clock estimates), so
each is flushed immediately: the log is the first thing read after an incident.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from mm_core.events import Event, event_fields


class EventLogWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: dict[str, int] = {}
        self._fh = open(path, "ab")

    def write(self, event: Event) -> None:
        self._fh.write(orjson.dumps(event_fields(event)) + b"\n")
        self._fh.flush()
        self.counts[event.KIND] = self.counts.get(event.KIND, 0) + 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
