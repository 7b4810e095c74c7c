"""Real process crashes: SIGKILL store writers and compactions at random moments.

Each run starts a victim and a survivor on the same journal; the victim is
killed at a random moment, the survivor carries on without reopening. Then
everything either process acknowledged must load back intact, and the
journal must read end to end.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from uuid import UUID

import pytest

from journal import SessionStore
from tests._kill_worker import conversation
from tests.conftest import PYTHON, ROOT, child_env

WORKER = str(ROOT / "tests" / "_kill_worker.py")
SAVE_RUNS = 35
COMPACT_RUNS = 15


def spawn(*args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [PYTHON, WORKER, *args], stdout=subprocess.PIPE, text=True, env=child_env()
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def last_ack(out: str) -> int:
    acks = [int(line.split()[1]) for line in out.splitlines() if line.startswith("ack ")]
    return acks[-1] if acks else 0


def check(root: Path, acked: dict[int, int]) -> None:
    """Every acknowledged save is there, whole; everything reads and decodes."""
    with SessionStore.open(root, segment_size=8192) as store:
        for k, n in acked.items():
            if n == 0 and not store.session_exists(UUID(int=k)):
                continue  # killed before its first save was written: nothing to find
            # A victim that acknowledged nothing may still have written its
            # first save: then that one is there whole, like any other.
            _, conv, state = store.load_session(UUID(int=k))
            # At least what was acknowledged: the victim may have written one
            # more save that it never got to acknowledge.
            assert len(conv.messages) >= max(n, 2), (k, len(conv.messages), n)
            full = conversation(UUID(int=k), len(conv.messages) // 2)
            assert conv == full
            assert state.cursor_position == len(conv.messages) // 2
        for rec in store.journal.scan():
            store.journal.decode(rec)


@pytest.mark.parametrize("run", range(SAVE_RUNS))
def test_a_store_writer_killed_mid_save_loses_nothing_acknowledged(
    tmp_path: Path, run: int
) -> None:
    rng = random.Random(run)
    root = tmp_path / "j"
    victim = spawn("save", str(root), "1", "400")
    survivor = spawn("save", str(root), "2", "60")
    time.sleep(rng.uniform(0.05, 0.4))
    victim.send_signal(signal.SIGKILL)
    victim_out, _ = victim.communicate(timeout=60)
    survivor_out, _ = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, "the survivor could not carry on"
    assert last_ack(survivor_out) == 120
    check(root, {1: last_ack(victim_out), 2: 120})


@pytest.mark.parametrize("run", range(COMPACT_RUNS))
def test_a_compaction_killed_at_any_moment_leaves_a_whole_journal(
    tmp_path: Path, run: int
) -> None:
    rng = random.Random(1000 + run)
    root = tmp_path / "j"
    history = spawn("save", str(root), "3", "40")
    history_out, _ = history.communicate(timeout=120)
    compactor = spawn("compact", str(root))
    writer = spawn("save", str(root), "4", "60")
    time.sleep(rng.uniform(0.02, 0.3))
    compactor.send_signal(signal.SIGKILL)
    compactor.communicate(timeout=60)
    writer_out, _ = writer.communicate(timeout=120)
    assert writer.returncode == 0, "the writer could not carry on after the compactor died"
    check(root, {3: last_ack(history_out), 4: last_ack(writer_out)})
    with SessionStore.open(root, segment_size=8192) as store:
        listed = {s.name for s in store.journal.manifest.segments}
    # The next writer's open removed whatever the killed compaction left behind.
    assert {p.name for p in (root / "segments").iterdir()} == listed


@pytest.mark.parametrize("op", ["write", "rename", "unlink"])
def test_a_compaction_killed_mid_rewrite_leaves_the_old_or_the_new_journal(
    tmp_path: Path, op: str
) -> None:
    """The kill lands inside the compaction by construction: at the first byte
    of a rewritten segment, at the manifest switch, or at the first removal of
    a replaced segment after it."""
    root = tmp_path / "j"
    history = spawn("save", str(root), "5", "40")
    history_out, _ = history.communicate(timeout=120)
    with SessionStore.open(root, segment_size=8192, readonly=True) as store:
        before = store.load_session(UUID(int=5))[1:]
    victim = spawn("compact-dies", str(root), op)
    assert victim.stdout is not None
    out = victim.stdout.read()  # (not communicate(): spawn's readline may hold the rest)
    victim.wait(120)
    assert "dying" in out and "compacted" not in out
    assert victim.returncode == -signal.SIGKILL
    with SessionStore.open(root, segment_size=8192, readonly=True) as store:
        listed = {s.name for s in store.journal.manifest.segments}
        assert store.load_session(UUID(int=5))[1:] == before
    on_disk = {p.name for p in (root / "segments").iterdir()}
    # Mid-compaction: before the switch the new files are not listed; after it
    # the replaced ones are still there (the kill came before their removal).
    assert any("-r" in n for n in on_disk - listed) == (op != "unlink")
    assert on_disk - listed, "no file of the interrupted compaction was left"
    check(root, {5: last_ack(history_out)})
    with SessionStore.open(root, segment_size=8192) as store:
        listed = {s.name for s in store.journal.manifest.segments}
    assert {p.name for p in (root / "segments").iterdir()} == listed
