"""A child process for the SIGKILL tests of the session store.

``python tests/_kill_worker.py save ROOT SESSION_INT TURNS`` saves one session
turn by turn (two messages a turn) and prints ``ack <messages>`` after each
acknowledged save. ``python tests/_kill_worker.py compact ROOT`` compacts in a
loop (after sealing the active segment), printing ``compacted`` after each.
Both print ``ready`` first and flush every line at once, so the parent knows
exactly what was acknowledged before it killed the child.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from uuid import UUID

from journal import (
    ConversationSnapshot,
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


if __name__ == "__main__":
    if sys.argv[1] == "save":
        save(sys.argv[2], UUID(int=int(sys.argv[3])), int(sys.argv[4]))
    else:
        compact(sys.argv[2])
