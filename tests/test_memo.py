"""The server-wide memo: one computation per key however many threads ask, several keys side by side, guesses
computed in the background only while the server is idle."""
import threading

import pytest

from fer_models.explain import memo as memo_module
from fer_models.explain.memo import Memo, server_idle
from tests.helpers import wait_for


def counting(value, calls, gate=None):
    def compute():
        calls.append(value)
        if gate is not None:
            assert gate.wait(10), "the computation was never released"
        return value
    return compute


def test_threads_asking_for_one_key_share_one_computation():
    memo, calls, gate = Memo(), [], threading.Event()
    results = []
    threads = [threading.Thread(target=lambda: results.append(memo.get("k", counting(7, calls, gate))))
               for _ in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: calls, timeout=10, what="the first computation")
    gate.set()
    for t in threads:
        t.join(10)
    assert calls == [7] and results == [7] * 8


def test_get_all_computes_the_missing_keys_side_by_side():
    memo, both = Memo(), threading.Barrier(2, timeout=10)

    def meets(value):  # passes the barrier only if the other computation runs at the same time
        return lambda: (both.wait(), value)[1]

    memo.get("done", lambda: "cached")
    assert memo.get_all([("a", meets(1)), ("done", lambda: pytest.fail("recomputed")), ("b", meets(2))]) == \
        [1, "cached", 2]


def test_a_failed_computation_reaches_its_waiters_and_is_not_kept():
    memo = Memo()

    def broken():
        raise ValueError("no such face")

    with pytest.raises(ValueError, match="no such face"):
        memo.get("k", broken)
    assert not memo.known("k") and memo.get("k", lambda: 3) == 3


def test_the_least_recently_used_entry_goes_first():
    memo = Memo(max_entries=2)
    memo.get("a", lambda: 1)
    memo.get("b", lambda: 2)
    memo.get("a", lambda: pytest.fail("recomputed"))
    memo.get("c", lambda: 3)
    assert memo.known("a") and memo.known("c") and not memo.known("b")


def test_a_guess_is_computed_in_the_background_newest_first():
    calls, gate = [], threading.Event()
    memo = Memo(idle=lambda: True)
    memo.prefetch("first", counting("first", calls, gate))  # holds the background thread while two more queue
    wait_for(lambda: calls, timeout=10, what="the first guess to start")
    memo.prefetch("older", counting("older", calls))
    memo.prefetch("newer", counting("newer", calls))
    gate.set()
    wait_for(lambda: memo.known("older"), timeout=10, what="the older guess")
    assert calls == ["first", "newer", "older"]


def test_nothing_is_guessed_while_the_server_is_busy_and_the_guess_waits_its_turn():
    calls, asked, idle = [], [], threading.Event()
    memo = Memo(idle=lambda: asked.append(1) or idle.is_set())
    memo.prefetch("k", counting(1, calls))
    wait_for(lambda: len(asked) >= 3, timeout=10, what="three looks at a busy server")
    assert calls == []
    idle.set()
    wait_for(lambda: memo.known("k"), timeout=10, what="the guess once the server is idle")
    assert calls == [1]


def test_a_stale_guess_is_dropped(monkeypatch):
    monkeypatch.setattr(memo_module, "STALE_SECONDS", -1.0)
    calls, memo = [], Memo(idle=lambda: True)
    memo.prefetch("k", counting(1, calls))
    wait_for(lambda: not memo._waiting, timeout=10, what="the guess to be taken")
    assert memo.get("k", lambda: 2) == 2 and calls == []


def test_a_guess_already_known_or_running_is_not_queued_again():
    memo, gate, calls = Memo(idle=lambda: True), threading.Event(), []
    memo.get("done", lambda: 1)
    memo.prefetch("done", counting(2, calls))
    runner = threading.Thread(target=memo.get, args=("running", counting(3, calls, gate)))
    runner.start()
    wait_for(lambda: calls, timeout=10, what="the computation to start")
    memo.prefetch("running", counting(4, calls))
    gate.set()
    runner.join(10)
    assert calls == [3] and not memo._waiting


def test_a_busy_thread_makes_the_server_busy():
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(range(1000))

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        assert not server_idle()
    finally:
        stop.set()
        spinner.join()
