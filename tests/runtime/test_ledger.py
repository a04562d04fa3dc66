"""The kernel ledger, without an event loop: moves, listeners, restarts, rates."""

from __future__ import annotations

import pytest

from ringctl import KernelState
from ringctl.engine.ledger import KernelBook
from ringctl.exceptions import KernelStateError

S = KernelState


def test_every_move_goes_through_the_table_and_reaches_every_listener() -> None:
    seen: list[tuple[str, KernelState, KernelState]] = []

    def broken(*_: object) -> None:
        raise RuntimeError("a listener bug")

    book = KernelBook(id="k")
    book.move("activate", [broken, lambda *move: seen.append(move)])  # type: ignore[arg-type]
    book.move("deactivate", [lambda *move: seen.append(move)])  # type: ignore[arg-type]
    assert seen == [("k", S.LAUNCHED, S.ACTIVE), ("k", S.ACTIVE, S.DEACTIVATED)]
    with pytest.raises(KernelStateError) as caught:
        book.move("activate")
    assert caught.value.current_state is S.DEACTIVATED
    assert book.state is S.DEACTIVATED  # a refused move changes nothing


def test_a_restart_starts_from_a_clean_slate_and_is_counted() -> None:
    book = KernelBook(id="k", state=S.TERMINATED, completed=True, forced=True, terminating=True)
    book.move("relaunch")
    book.restarted()
    assert book.state is S.LAUNCHED and book.restarts == 1
    assert not (book.completed or book.forced or book.terminating)


def test_rates_and_progress_come_from_samples_only() -> None:
    book = KernelBook(id="k", progress_at=0.0)
    book.sample(0, 0, now=10.0)
    book.sample(100, 50, now=11.0)
    assert book.rate_in.rate == 100.0 and book.rate_out.rate == 50.0
    assert book.progress_at == 11.0
    book.sample(100, 50, now=12.0)  # nothing moved: the progress clock stays
    assert book.progress_at == 11.0
