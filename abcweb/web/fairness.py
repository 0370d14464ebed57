"""One client address cannot take every core: its full runs of the page are spaced out.

A new tune is a full run of the page, asked for over the page's websocket, where no balancer
sees it (deploy/haproxy.cfg caps an address's websockets, connections and HTTP requests, not
what it asks for on a websocket it holds). A client with a few dozen pages open, each asking
again the moment its tune arrives, would take every core from everyone else. So each address
may make BURST runs at once, then RATE a second (a generic cell rate algorithm: when a run's
turn comes is worked out, and the run waits for it). A visitor changes a setting every few
seconds at most, several tabs included, so no visitor waits; a run whose turn is more than
MAX_WAIT_S away is refused with a message instead of piling up.

The address is st.context.ip_address: uvicorn takes it from X-Forwarded-For when the peer is a
trusted proxy (FORWARDED_ALLOW_IPS, loopback by default; deploy/haproxy.cfg sends the header).
A peer on a private network with the header is a balancer uvicorn was not told to trust (a
container network): the header's last hop, the one that balancer added, names the client;
otherwise every visitor behind it would share one address. Localhost has none (None): the
operator and the tests are not spaced. ABCWEB_RUNS_PER_ADDRESS sets RATE (0 turns spacing off:
bench/abuse.py, to show the run without it) and ABCWEB_RUNS_BURST sets BURST.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time

RATE = float(os.environ.get("ABCWEB_RUNS_PER_ADDRESS", "1"))  # runs a second, sustained
BURST = int(os.environ.get("ABCWEB_RUNS_BURST", "20"))  # runs at once before RATE applies
MAX_WAIT_S = 30.0
MAX_ADDRESSES = 10_000  # past this, addresses whose turn has come are forgotten


class Spacer:
    """When each key's next run may start (GCRA: a theoretical arrival time per key)."""

    def __init__(self, rate: float, burst: int):
        self.interval = 1.0 / rate
        self.window = burst * self.interval
        self.tat: dict[str, float] = {}
        self.lock = threading.Lock()

    def turn(self, key: str, now: float, max_wait: float) -> float | None:
        """Seconds until this run may start (its place is taken), or None when that is more
        than max_wait away (no place is taken)."""
        with self.lock:
            tat = max(self.tat.get(key, now), now)
            wait = max(0.0, tat - self.window - now)
            if wait > max_wait:
                return None
            self.tat[key] = tat + self.interval
            if len(self.tat) > MAX_ADDRESSES:
                self.tat = {k: t for k, t in self.tat.items() if t > now}
            return wait


_spacer = Spacer(RATE, BURST) if RATE > 0 else None


def client_address(peer: str | None, forwarded: list[str]) -> str | None:
    if peer is not None and forwarded and ipaddress.ip_address(peer).is_private:
        return forwarded[-1].split(",")[-1].strip() or peer
    return peer


def wait_turn() -> bool:
    """Wait for this run's turn; False when it is too far away (the page says so)."""
    import streamlit as st

    if _spacer is None:
        return True
    address = client_address(st.context.ip_address,
                             st.context.headers.get_all("X-Forwarded-For"))
    if address is None:
        return True
    wait = _spacer.turn(address, time.monotonic(), MAX_WAIT_S)
    if wait is None:
        return False
    if wait > 0:
        time.sleep(wait)
    return True
