"""Ctrl-C at random moments of every long-running ``agcx`` command.

Each command runs as a real child process and gets SIGINT after a random delay
(seeded: a failure names its round). It must end with exit code 130 and one
line on stderr (or 0 when it finished first), never hang, never leave a
traceback; afterwards the journal verifies intact, read commands changed no
byte, and a write (recover, import, compact) is whole or absent.

The children start with SIGINT at its default even when the suite runs with
it ignored (started in the background by a script, or under nohup), as a
user's ``agcx`` in a terminal does. ``--run-slow`` runs many more rounds.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from journal import (
    ConversationSnapshot,
    InputText,
    Message,
    MessageSnapshot,
    SessionMetadata,
    SessionState,
    SessionStore,
)
from tests import legacy_writer as W
from tests.conftest import ROOT, child_env
from tools._verify import verify

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

# The real entry point (`agcx` is `tools.cli:run`), announcing on stderr when
# the handlers are in place, so the delays are measured from there.
_CHILD = (
    "import sys\n"
    "from tools import _interrupt\n"
    "_interrupt.install()\n"
    "import tools.cli\n"
    "sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
    "tools.cli.run(sys.argv[1:])\n"
)


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _rounds(request: pytest.FixtureRequest) -> int:
    return 40 if request.config.getoption("--run-slow") else 4


def _session(k: int, n: int) -> tuple[UUID, SessionMetadata, ConversationSnapshot]:
    sid = UUID(int=(k + 1) << 64 | 4 << 76 | 1 << 63)
    meta = SessionMetadata(
        id=sid, title=f"session {k}", created_at=T0, updated_at=T0, last_accessed=T0
    )
    msgs = tuple(
        MessageSnapshot(
            item=Message(role="user", content=(InputText(f"message {i} of {k} " * 20),)),
            timestamp=T0,
            turn_index=i,
        )
        for i in range(n)
    )
    return sid, meta, ConversationSnapshot(sid, msgs)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1,500 events in a few dozen segments: each command runs long enough
    for a random SIGINT to land in its middle."""
    root = tmp_path_factory.mktemp("interrupt") / "journal"
    with SessionStore.open(root, segment_size=64 << 10, durability="none") as store:
        for k in range(300):
            sid, meta, conv = _session(k, 8)
            store.save_session(sid, meta, conv, SessionState())
            store.tag(sid, f"t{k % 7}")
            store.save_session(sid, meta, conv, SessionState())
            store.touch(sid)
            store.rename(sid, f"session {k} renamed")
    return root


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A legacy (v2) history of 150 session files."""
    d = tmp_path_factory.mktemp("legacy")
    for k in range(150):
        _, meta, conv = _session(1000 + k, 6)
        W.write_session_file(d, meta, conv, SessionState())
    return d


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _state(store: SessionStore) -> list[tuple[object, ...]]:
    return [(m.id, m.title, m.tags, m.message_count) for m in store.list_sessions()]


def interrupt(root: Path, *args: str, delay: float | None) -> tuple[int, str]:
    """Run ``agcx --root ROOT ARGS``, SIGINT it ``delay`` s after it is ready
    (``None``: never); return its exit code and what it wrote on stderr after
    "ready"."""
    cmd = [sys.executable, "-c", _CHILD, "--root", str(root), *args]
    child = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_default,
    )
    try:
        assert child.stderr is not None
        assert child.stderr.readline() == "ready\n"
        if delay is not None:
            try:
                child.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)  # a hang fails here
    finally:
        child.kill()
    return child.returncode, err


def stopped_cleanly(code: int, err: str, done: tuple[int, ...] = (0,)) -> bool:
    """Exit 130 with the one line, or finished (``done``) before the signal.
    Returns whether it was interrupted."""
    if code == 130:
        assert err == "agcx: interrupted\n", err
        return True
    assert code in done, (code, err)
    assert "Traceback" not in err, err
    return False


def duration(root: Path, *args: str) -> float:
    """How long the command runs here, from ready to exit (it must succeed)."""
    started = time.monotonic()
    code, err = interrupt(root, *args, delay=None)
    assert code in (0, 1), err
    return time.monotonic() - started


def _delays(request: pytest.FixtureRequest, seed: int, longest: float) -> Iterator[float]:
    """Moments spread over the command's run (measured on this machine, now)."""
    rng = random.Random(seed)
    for _ in range(_rounds(request)):
        yield rng.uniform(0, longest)


@pytest.mark.parametrize(
    "args",
    [
        ("verify",),
        ("replay",),
        ("log",),
        ("--json", "ls", "--all"),
        ("info",),
    ],
    ids=lambda a: " ".join(a),
)
def test_ctrl_c_stops_a_read_command_and_changes_nothing(
    journal: Path, args: tuple[str, ...], request: pytest.FixtureRequest
) -> None:
    before = _files(journal)
    longest = duration(journal, *args)
    for delay in _delays(request, zlib.crc32(" ".join(args).encode()), longest):
        code, err = interrupt(journal, *args, delay=delay)
        stopped_cleanly(code, err)
    assert _files(journal) == before


def test_ctrl_c_during_recover_leaves_no_target_or_a_whole_one(
    journal: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    longest = duration(journal, "recover", "--salvage", "--out", str(tmp_path / "measure"))
    shutil.rmtree(tmp_path / "measure")
    last = verify(str(journal)).last_seq
    for k, delay in enumerate(_delays(request, 11, longest)):
        out = tmp_path / f"out{k}"
        mode = ("--at", "seq:1200") if k % 2 == 0 else ("--salvage",)
        code, err = interrupt(journal, "recover", *mode, "--out", str(out), delay=delay)
        stopped_cleanly(code, err)
        # No target, or (interrupted after the rename) the whole new journal.
        if out.exists():
            report = verify(str(out))
            assert report.intact and report.last_seq == (1200 if k % 2 == 0 else last)
        # Nothing half-written beside it (the new journal is built in a hidden sibling).
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert verify(str(journal)).intact


def test_ctrl_c_during_compact_leaves_the_journal_as_it_was_or_compacted(
    journal: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with SessionStore.open(journal, readonly=True) as store:
        expected = _state(store)
    shutil.copytree(journal, tmp_path / "measure")
    longest = duration(tmp_path / "measure", "compact", "--retain", "0s")
    shutil.rmtree(tmp_path / "measure")
    for k, delay in enumerate(_delays(request, 12, longest)):
        copy = tmp_path / f"j{k}"
        shutil.copytree(journal, copy)
        code, err = interrupt(copy, "compact", "--retain", "0s", delay=delay)
        stopped_cleanly(code, err)
        report = verify(str(copy))
        assert report.intact, report.problems
        with SessionStore.open(copy) as store:
            assert _state(store) == expected
        shutil.rmtree(copy)


def test_ctrl_c_during_import_keeps_whole_files_and_a_rerun_finishes(
    legacy: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    longest = duration(tmp_path / "measure", "import", str(legacy))
    shutil.rmtree(tmp_path / "measure")
    for k, delay in enumerate(_delays(request, 13, longest)):
        root = tmp_path / f"j{k}"
        code, err = interrupt(root, "import", str(legacy), delay=delay)
        stopped_cleanly(code, err, done=(0,))
        if root.exists():  # a new journal is created whole or not at all
            assert (root / "MANIFEST").is_file()
            assert verify(str(root)).intact
        code, err = interrupt(root, "import", str(legacy), delay=None)
        assert code == 0, err
        with SessionStore.open(root, readonly=True) as store:
            assert len(store.list_sessions()) == 150
        assert verify(str(root)).intact
        shutil.rmtree(root)


def test_an_interruption_raised_where_python_swallows_it_is_delivered_again() -> None:
    # Ctrl-C during a lazy import can land in a weakref callback of the import
    # machinery, where Python prints "Exception ignored" and drops it.
    code = (
        "import weakref\n"
        "from tools import _interrupt\n"
        "_interrupt.install()\n"
        "class A: pass\n"
        "a = A()\n"
        "def callback(ref): raise KeyboardInterrupt\n"
        "r = weakref.ref(a, callback)\n"
        "try:\n"
        "    del a\n"
        "    for _ in range(10_000_000): pass\n"
        "    print('lost')\n"
        "except KeyboardInterrupt:\n"
        "    print('delivered')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_sigint_default,
    )
    assert (r.stdout, r.stderr) == ("delivered\n", "")
