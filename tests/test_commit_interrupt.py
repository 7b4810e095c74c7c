"""Ctrl-C in the library: a KeyboardInterrupt delivered to a thread waiting for its
group commit leaves the journal consistent and the other threads' commits unaffected.

The signal goes to the main thread (as Ctrl-C does) at a moment the test
makes certain with a file system that holds a write or a sync open: either
the main thread's batch is still queued (it is withdrawn: nothing of it is
written), or its thread is syncing a group for others too (the sync is seen
through, every group acknowledged, and then the interrupt is raised).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from journal import FileSystem, Journal


class Gate(FileSystem):
    """Holds the first segment write (or sync) of the thread named ``who`` until ``go``."""

    def __init__(self, op: str, who: str) -> None:
        self.op, self.who = op, who
        self.inside = threading.Event()
        self.go = threading.Event()
        self.armed = False

    def _hold(self) -> None:
        if self.armed and threading.current_thread().name == self.who:
            self.armed = False
            self.inside.set()
            self.go.wait()

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        if self.op == "pwrite":
            self._hold()
        return super().pwrite(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        if self.op == "fdatasync":
            self._hold()
        super().fdatasync(fd)


@pytest.fixture(autouse=True)
def _sigint_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt here even when the suite runs with it
    ignored (in the background, under nohup)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _interrupt_main() -> None:
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def test_ctrl_c_while_queued_behind_a_leader_withdraws_the_batch_and_others_commit(
    tmp_path: Path,
) -> None:
    gate = Gate("pwrite", "leader")
    with Journal.open(tmp_path / "j", fs=gate) as j:
        j.append(1, "before")
        gate.armed = True
        results: dict[str, object] = {}

        def append(name: str, payload: str) -> None:
            results[name] = j.append(1, payload)

        leader = threading.Thread(target=append, args=("leader", "leader"), name="leader")
        leader.start()
        assert gate.inside.wait(60)  # the leader holds the commit, mid-write

        def then_queue_and_interrupt() -> None:
            # The main thread queues next (the test's own append below); then W2.
            while len(j._queue) < 1:
                threading.Event().wait(0.001)
            follower = threading.Thread(target=append, args=("w2", "w2"), name="w2")
            follower.start()
            while len(j._queue) < 2:
                threading.Event().wait(0.001)
            _interrupt_main()
            while len(j._queue) > 1:  # until the main thread withdrew its batch
                threading.Event().wait(0.001)
            gate.go.set()
            follower.join(60)
            results["w2 alive"] = follower.is_alive()

        helper = threading.Thread(target=then_queue_and_interrupt)
        helper.start()
        with pytest.raises(KeyboardInterrupt):
            j.append(1, "interrupted")
        helper.join(60)
        leader.join(60)
        assert not leader.is_alive() and results["w2 alive"] is False
        assert j.append(1, "after") == 4
    with Journal.open(tmp_path / "j", readonly=True) as r:
        got = [r.decode(x) for x in r.scan()]
    assert got[0] == "before" and got[-1] == "after"
    assert sorted(got[1:3]) == ["leader", "w2"]  # the interrupted batch was never written


def test_ctrl_c_during_a_sync_that_covers_other_threads_is_raised_after_they_are_acknowledged(
    tmp_path: Path,
) -> None:
    gate = Gate("fdatasync", "MainThread")
    with Journal.open(tmp_path / "j", fs=gate) as j:
        j.append(1, "before")
        results: dict[str, object] = {}

        def helper() -> None:
            assert gate.inside.wait(60)  # the main thread syncs its group

            def w2() -> None:
                results["w2"] = j.append(1, "w2")

            t = threading.Thread(target=w2, name="w2")
            t.start()
            # W2's group is written and waits for the sync the main thread runs.
            while j._tickets_issued < 3:
                threading.Event().wait(0.001)
            _interrupt_main()  # the gate's wait is what it interrupts (go is never set)
            t.join(60)
            results["w2 alive"] = t.is_alive()

        h = threading.Thread(target=helper)
        h.start()
        gate.armed = True
        with pytest.raises(KeyboardInterrupt):
            j.append(1, "main")
        h.join(60)
        assert results["w2 alive"] is False and results["w2"] == 3
        assert j.append(1, "after") == 4
    with Journal.open(tmp_path / "j", readonly=True) as r:
        # The main thread's save completed (it was being synced) before Ctrl-C was raised.
        assert [r.decode(x) for x in r.scan()] == ["before", "main", "w2", "after"]
