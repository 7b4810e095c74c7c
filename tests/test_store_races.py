"""Decisions re-checked under the commit lock: a command that depends on a
session's state applies to the state its caller saw, or fails with a typed
error and writes nothing.

One process deletes and re-creates sessions while two others tag, rename,
favorite, touch and checkpoint them. The oracle is the log itself, replayed
by this test (not by the projections): no event may name a session that is
not live at its seq, every acknowledged operation's event is in the log
exactly once, and every refused one's is not.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from journal import (
    CheckpointNotFound,
    EventType,
    Journal,
    SessionConflict,
    SessionNotFound,
    SessionPurged,
    SessionState,
    SessionStore,
)
from tests._race_worker import save, sessions
from tests._store_worker import conversation, metadata, uid
from tests.conftest import ROOT
from tests.test_store_multiprocess import run_workers

WORKER = str(ROOT / "tests" / "_race_worker.py")
_EDITS = {
    EventType.TAGS_CHANGED,
    EventType.SESSION_RENAMED,
    EventType.FAVORITE_CHANGED,
    EventType.SESSION_TOUCHED,
    EventType.CHECKPOINT_CREATED,
    EventType.CHECKPOINT_DELETED,
    EventType.SESSION_DELETED,
}


def test_edits_racing_deletes_are_applied_to_a_live_session_or_refused_with_a_typed_error(
    root: Path, tmp_path: Path
) -> None:
    n = 4
    with SessionStore.open(root) as store:
        for sid in sessions(n):
            save(store, sid, 0)
    common = {"sessions": n, "seconds": 2.0}
    logs = run_workers(
        root,
        [
            {"worker": 0, "role": "churn", **common},
            {"worker": 1, "role": "edit", **common},
            {"worker": 2, "role": "edit", **common},
        ],
        tmp_path,
        WORKER,
    )
    edits = [op for log in logs[1:] for op in log if op["op"] != "ready"]
    assert all(op.get("ok") or op.get("error") for op in edits)
    refused = [op for op in edits if "error" in op]
    assert {op["error"] for op in refused} <= {"SessionNotFound", "SessionConflict"}

    # Replay the log: which session is live at each seq, and which edits it holds.
    live: set[bytes] = set()
    dead_edits: list[tuple[int, str]] = []
    written: Counter[tuple[str, str]] = Counter()
    with Journal.open(root, readonly=True) as j:
        for rec in j.scan():
            t = rec.event_type
            if t == EventType.SESSION_SAVED:
                live.add(rec.session)
                continue
            if t not in _EDITS:
                continue
            if rec.session not in live:
                dead_edits.append((rec.seq, EventType(t).name))
            if t == EventType.SESSION_DELETED:
                live.discard(rec.session)
                continue
            ev = j.decode(rec)
            if t == EventType.TAGS_CHANGED:
                written.update(("tag", x) for x in ev["add"])
            elif t == EventType.SESSION_RENAMED:
                written[("rename", ev["title"])] += 1
            elif t == EventType.CHECKPOINT_CREATED:
                written[("checkpoint", ev["meta"]["n"])] += 1
            elif t == EventType.FAVORITE_CHANGED:
                written[("favorite", "")] += 1
            elif t == EventType.SESSION_TOUCHED:
                written[("touch", "")] += 1
    assert dead_edits == [], f"{len(dead_edits)} events on deleted sessions: {dead_edits[:5]}"
    want: Counter[tuple[str, str]] = Counter()
    for op in edits:
        if op.get("ok"):
            want[(op["op"], op.get("tag") or op.get("title") or op.get("name") or "")] += 1
    assert written == want
    # The race was real: some edits were refused, and some went through.
    assert refused and len(refused) < len(edits)


def _interleave(store: SessionStore, meanwhile: Any) -> None:
    """Run ``meanwhile()`` right after ``store``'s first look at a session,
    before its commit (another process acting in between)."""
    first_look = store._require
    done: list[bool] = []

    def require(sid: Any) -> int:
        born = first_look(sid)
        if not done:
            done.append(True)
            meanwhile()
        return born

    store._require = require  # type: ignore[method-assign]


def _count(root: Path, t: EventType) -> int:
    with Journal.open(root, readonly=True) as j:
        return sum(1 for r in j.scan() if r.event_type == t)


@pytest.mark.parametrize("meanwhile", ["deleted", "deleted-and-saved-again", "purged"])
@pytest.mark.parametrize("edit", ["tag", "rename", "favorite", "touch", "checkpoint", "delete"])
def test_an_edit_of_a_session_another_process_deletes_before_the_commit_writes_nothing(
    root: Path, edit: str, meanwhile: str
) -> None:
    (sid,) = sessions(1)
    again = meanwhile == "deleted-and-saved-again"
    with SessionStore.open(root) as a, SessionStore.open(root) as b:
        save(a, sid, 0)
        before = [r.seq for r in a.journal.scan()]

        def other() -> None:
            if meanwhile == "purged":
                b.purge(sid)
                return
            b.delete_session(sid)
            if again:
                save(b, sid, 1)

        _interleave(a, other)
        ops = {
            "tag": lambda: a.tag(sid, "x"),
            "rename": lambda: a.rename(sid, "x"),
            "favorite": lambda: a.set_favorite(sid, True),
            "touch": lambda: a.touch(sid),
            "checkpoint": lambda: a.create_checkpoint(
                sid, uid("ck"), conversation(sid, []), SessionState()
            ),
            "delete": lambda: a.delete_session(sid),
        }
        expected = {
            "deleted": SessionNotFound,
            "deleted-and-saved-again": SessionConflict,
            "purged": SessionPurged,  # naming the purge, not "deleted meanwhile"
        }[meanwhile]
        with pytest.raises(expected) as info:
            ops[edit]()
        assert str(sid) in str(info.value)
        if meanwhile == "deleted":
            assert not isinstance(info.value, SessionPurged)
        written = [r for r in a.journal.scan()]
        if meanwhile == "purged":
            # Only the purge's own mark names the session.
            assert [r.event_type for r in written if r.session == sid.bytes] == [
                EventType.SESSION_PURGED
            ]
        else:
            assert len(written) == len(before) + (2 if again else 1)  # b's events only
        if again:
            assert a.get_metadata(sid).title == "life 1"
            assert a.get_metadata(sid).tags == ()


def test_deleting_a_checkpoint_another_process_deleted_before_the_commit_writes_nothing(
    root: Path,
) -> None:
    (sid,) = sessions(1)
    ck = uid("ck")
    with SessionStore.open(root) as a, SessionStore.open(root) as b:
        save(a, sid, 0)
        a.create_checkpoint(sid, ck, conversation(sid, []), SessionState())
        _interleave(a, lambda: b.delete_checkpoint(sid, ck))
        with pytest.raises(CheckpointNotFound):
            a.delete_checkpoint(sid, ck)
    assert _count(root, EventType.CHECKPOINT_DELETED) == 1


def test_cleanup_counts_the_sessions_another_process_saved_after_this_one_last_looked(
    root: Path,
) -> None:
    ids = sessions(3)
    with SessionStore.open(root) as a, SessionStore.open(root) as b:
        save(a, ids[0], 0)
        a.list_sessions()  # a's last look: one session
        for sid in ids[1:]:
            save(b, sid, 0)
        b.set_favorite(ids[1], True)
        # The oldest by last access (all equal: by id) that is not a favorite goes.
        doomed = a.cleanup_old_sessions(max_count=2)
        assert len(doomed) == 1 and ids[1] not in doomed
    assert _count(root, EventType.SESSION_DELETED) == 1


def test_cleanup_deletes_a_session_another_process_made_old_between_its_look_and_its_commit(
    root: Path,
) -> None:
    from datetime import UTC, datetime

    first = uid("old-1")
    late = next(
        u for u in (uid(f"old-2/{k}") for k in range(1000)) if hash(u) % 64 != hash(first) % 64
    )
    past = datetime(2000, 1, 1, tzinfo=UTC)
    with SessionStore.open(root) as a, SessionStore.open(root) as b:
        a.save_session(first, metadata(first, "old", last_accessed=past),
                       conversation(first, ["x"]), SessionState())
        append = a._append
        calls: list[int] = []

        def meanwhile(entries: Any, prepare: Any = None) -> list[int]:
            if not calls:  # after a's look, before its commit: b saves an old session
                b.save_session(late, metadata(late, "late", last_accessed=past),
                               conversation(late, ["y"]), SessionState())
            calls.append(1)
            return append(entries, prepare)

        a._append = meanwhile  # type: ignore[method-assign]
        doomed = a.cleanup_old_sessions(max_age_days=1)
        assert sorted(doomed) == sorted([first, late]) and len(calls) == 2  # tried twice
        assert not a.session_exists(first) and not a.session_exists(late)
    assert _count(root, EventType.SESSION_DELETED) == 2
