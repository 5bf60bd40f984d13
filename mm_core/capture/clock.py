"""Clock offset and round-trip time from application ping/pong.

The exchange stamps ``time_in`` (request received) and ``time_out`` (response sent) with its own
clock. With our send time ``t0`` and receive time ``t1`` (same local clock)::

    rtt    = (t1 - t0) - (time_out - time_in)
    offset = (time_in + time_out) / 2 - (t0 + t1) / 2     # exchange clock minus local clock

The offset is exact when the path is symmetric and otherwise off by at most rtt/2: that bound is
why the RTT is reported beside every offset. A positive offset means the exchange clock is ahead,
which makes measured ages (local capture − exchange time) look *smaller* than they are.
"""

from __future__ import annotations


def clock_estimate(t0_ns: int, t1_ns: int, time_in_ns: int, time_out_ns: int) -> tuple[int, int]:
    """(offset_ns, rtt_ns) from one ping sent at ``t0`` and answered at ``t1`` (local clock)."""
    rtt = (t1_ns - t0_ns) - max(0, time_out_ns - time_in_ns)
    offset = (time_in_ns + time_out_ns) // 2 - (t0_ns + t1_ns) // 2
    return offset, max(0, rtt)
