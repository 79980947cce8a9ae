"""Clock arithmetic: pure, so plain unit tests."""

from __future__ import annotations

from app.services import clocks

PLAYERS = ("alice", "bob")


def fresh(now: int = 0) -> clocks.Clock:
    return clocks.new_clock(PLAYERS, ["alice"], budget_ms=10_000, move_limit_ms=3_000, now=now)


def test_only_the_player_to_move_runs() -> None:
    clock = fresh()
    assert clock["running"] == {"alice": 0}
    view = clocks.snapshot(clock, now=1_000)
    assert view == {
        "remaining_ms": {"alice": 9_000, "bob": 10_000},
        "running": ["alice"],
        "move_limit_ms": 3_000,
        "deadline_ms": 2_000,
    }


def test_a_move_charges_the_mover_and_starts_the_next() -> None:
    clock = clocks.tick(fresh(), mover="alice", to_move=["bob"], now=2_500)
    assert clock["budget_ms"] == {"alice": 7_500, "bob": 10_000}
    assert clock["running"] == {"bob": 2_500}


def test_moving_again_restarts_the_move_limit() -> None:
    clock = clocks.tick(fresh(), mover="alice", to_move=["alice"], now=2_000)
    assert clock["running"] == {"alice": 2_000} and clock["budget_ms"]["alice"] == 8_000


def test_non_move_events_do_not_reset_the_move_limit() -> None:
    clock = clocks.tick(fresh(), mover=None, to_move=["alice"], now=2_000)
    assert clock["running"] == {"alice": 0} and clock["budget_ms"]["alice"] == 10_000


def test_deadline_is_the_sooner_of_budget_and_move_limit() -> None:
    low = {**fresh(), "budget_ms": {"alice": 1_000, "bob": 10_000}}
    assert clocks.next_deadline(low, {}, abandon_ms=60_000) == 1_000
    assert clocks.next_deadline(fresh(), {}, abandon_ms=60_000) == 3_000
    assert clocks.next_deadline(fresh(), {"bob": 500}, abandon_ms=1_000) == 1_500
    assert clocks.next_deadline(None, {}, abandon_ms=1_000) is None


def test_expiry_names_the_loser_and_the_reason() -> None:
    assert clocks.expiry(fresh(), {}, PLAYERS, abandon_ms=60_000, now=2_999) is None
    timeout = clocks.expiry(fresh(), {}, PLAYERS, abandon_ms=60_000, now=3_000)
    assert timeout == clocks.Expiry("alice", "timeout", 3_000)
    gone = clocks.expiry(fresh(), {"bob": 0}, PLAYERS, abandon_ms=1_000, now=1_000)
    assert gone == clocks.Expiry("bob", "abandoned", 1_000)
    both = clocks.expiry(None, {"alice": 0, "bob": 10}, PLAYERS, abandon_ms=100, now=200)
    assert both == clocks.Expiry(None, "abandoned", 110)


def test_stop_charges_everyone_and_runs_nothing() -> None:
    stopped = clocks.stop(fresh(), now=1_500)
    assert stopped["running"] == {} and stopped["budget_ms"]["alice"] == 8_500
    assert clocks.next_deadline(stopped, {}, abandon_ms=1) is None
