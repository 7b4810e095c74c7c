"""A child process for the SIGKILL tests of the session store.

``python tests/_kill_worker.py save ROOT SESSION_INT TURNS`` saves one session
turn by turn (two messages a turn) and prints ``ack <messages>`` after each
acknowledged save. ``python tests/_kill_worker.py compact ROOT`` compacts in a
loop (after sealing the active segment), printing ``compacted`` after each.
``python tests/_kill_worker.py compact-dies ROOT OP`` compacts once and kills
itself (SIGKILL) mid-compaction, at its first file operation of kind ``OP``
on a rewritten segment or the manifest (``write``: a rewritten segment's first
bytes; ``rename``: the switch to the new manifest; ``unlink``: the first
removal of a replaced segment, after the switch).
Both print ``ready`` first and flush every line at once, so the parent knows
exactly what was acknowledged before it killed the child.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from uuid import UUID

from journal import (
    ConversationSnapshot,
    FileSystem,
    InputText,
    Message,
    MessageMetadata,
    MessageSnapshot,
    OutputText,
    SessionMetadata,
    SessionState,
    SessionStore,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def conversation(sid: UUID, turns: int) -> ConversationSnapshot:
    msgs = []
    for t in range(turns):
        ask = Message("user", [InputText(f"{sid.int} turn {t} " * 8)])
        answer = Message("assistant", [OutputText(f"done {t} " * 8)])
        for k, item in enumerate((ask, answer)):
            meta = MessageMetadata(message_id=UUID(int=sid.int * 10**6 + 2 * t + k))
            msgs.append(MessageSnapshot(item, T0, t, meta))
    return ConversationSnapshot(sid, msgs)


def save(root: str, sid: UUID, turns: int) -> None:
    full = conversation(sid, turns)
    with SessionStore.open(root, segment_size=8192, max_chain=4) as store:
        print("ready", flush=True)
        for t in range(1, turns + 1):
            conv = ConversationSnapshot(sid, full.messages[: 2 * t])
            meta = SessionMetadata(sid, f"session {sid.int}", T0, T0, T0)
            store.save_session(sid, meta, conv, SessionState(cursor_position=t))
            print(f"ack {2 * t}", flush=True)


def compact(root: str) -> None:
    with SessionStore.open(root, segment_size=8192) as store:
        print("ready", flush=True)
        while True:
            store.journal.seal_active()
            store.compact(timedelta(0))
            print("compacted", flush=True)


class DiesMidCompaction(FileSystem):
    """SIGKILLs the process at its first ``op`` once ``armed``."""

    def __init__(self, op: str) -> None:
        self.op = op
        self.armed = False
        self.switched = False  # a manifest switch happened since armed
        self.rewritten: set[int] = set()

    def _maybe_die(self, op: str) -> None:
        if self.armed and op == self.op:
            print("dying", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        fd = super().open(path, flags, mode)
        if self.armed and "-r" in os.path.basename(path):
            self.rewritten.add(fd)
        return fd

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        if fd in self.rewritten:
            self._maybe_die("write")
        return super().pwrite(fd, data, offset)

    def rename(self, src: str, dst: str) -> None:
        if os.path.basename(dst) == "MANIFEST":
            self._maybe_die("rename")
            self.switched = self.armed
        super().rename(src, dst)

    def unlink(self, path: str) -> None:
        if path.endswith(".agcx") and self.switched:
            self._maybe_die("unlink")
        super().unlink(path)


def compact_dies(root: str, op: str) -> None:
    fs = DiesMidCompaction(op)
    with SessionStore.open(root, segment_size=8192, fs=fs) as store:
        store.journal.seal_active()
        print("ready", flush=True)
        fs.armed = True
        store.compact(timedelta(0))
        print("compacted", flush=True)  # (never: it dies first)


if __name__ == "__main__":
    if sys.argv[1] == "save":
        save(sys.argv[2], UUID(int=int(sys.argv[3])), int(sys.argv[4]))
    elif sys.argv[1] == "compact-dies":
        compact_dies(sys.argv[2], sys.argv[3])
    else:
        compact(sys.argv[2])
