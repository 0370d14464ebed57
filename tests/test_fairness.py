"""abcweb/web/fairness.py's spacing of one address's runs, by its arithmetic (a fake clock);
that the page really applies it behind HAProxy is in tests/test_abuse.py."""

from __future__ import annotations

from abcweb.web.fairness import Spacer, client_address


def test_an_address_gets_its_burst_at_once_then_the_rate():
    s = Spacer(rate=2.0, burst=3)
    waits = [s.turn("a", 100.0, max_wait=60) for _ in range(6)]
    assert waits[:4] == [0.0, 0.0, 0.0, 0.0]  # the burst (the fourth lands on its turn)
    assert waits[4:] == [0.5, 1.0]  # then one every 1/rate seconds
    assert s.turn("b", 100.0, max_wait=60) == 0.0  # another address is not held up


def test_a_turn_too_far_away_is_refused_and_takes_no_place():
    s = Spacer(rate=1.0, burst=1)
    assert s.turn("a", 0.0, max_wait=5) == 0.0
    assert s.turn("a", 0.0, max_wait=5) == 0.0
    assert s.turn("a", 0.0, max_wait=0.5) is None
    assert s.turn("a", 0.0, max_wait=5) == 1.0  # the refused run did not push it further


def test_an_address_that_paused_gets_its_burst_back():
    s = Spacer(rate=1.0, burst=2)
    for _ in range(3):
        s.turn("a", 0.0, max_wait=60)
    assert s.turn("a", 0.0, max_wait=60) == 1.0
    assert s.turn("a", 1000.0, max_wait=60) == 0.0


def test_the_address_behind_a_balancer_on_a_private_network_is_its_last_hop():
    assert client_address(None, ["93.184.216.34"]) is None  # localhost: never spaced
    assert client_address("93.184.216.34", []) == "93.184.216.34"
    # A public peer is the client itself, whatever header it sends.
    assert client_address("93.184.216.34", ["10.0.0.1"]) == "93.184.216.34"
    # A container network's balancer: the hop it added (a client's own header comes first).
    assert client_address("172.18.0.5", ["1.2.3.4, 151.101.1.69"]) == "151.101.1.69"
    assert client_address("172.18.0.5", ["1.2.3.4", "151.101.1.69"]) == "151.101.1.69"
