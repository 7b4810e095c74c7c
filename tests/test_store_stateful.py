"""SessionStore against a plain in-memory oracle, step by random step.

Every feature of the old store, driven as random sequences: saves that extend
or rewrite the message list (and change context, state and mode history),
deletes, tags, favorites, renames, touches, checkpoints, retention cleanup,
and close/reopen with the projection snapshots kept, deleted, corrupted or
stale. After every step the store answers exactly as the oracle does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from msgspec.structs import replace

from journal import (
    CheckpointNotFound,
    ConversationSnapshot,
    InvalidArgument,
    Journal,
    MessageSnapshot,
    SessionMetadata,
    SessionNotFound,
    SessionState,
    SessionStore,
)
from tests import strategies as ms
from tests._store_worker import Oracle, assert_listing_matches, message

# Last-accessed times are whole days plus half a day before this moment, and
# cleanup ages are whole days >= 1: no session is ever near the cutoff, and a
# touched session (accessed "now") is never old enough to go.
NOW = datetime.now(UTC).replace(microsecond=0)
TAG_NAMES = ["red", "green", "Blue", "re", "x"]
TITLES = st.text(alphabet="abcAB -", max_size=8)
TAG_LISTS = st.lists(st.sampled_from(TAG_NAMES), max_size=3)
QUERIES = st.sampled_from(["", "a", "B", "re", "blue", "green", "zz", " "])
# Plain messages are cheap to draw; every item shape (unknown ones too) comes in as well.
MESSAGE = st.one_of(
    st.builds(message, st.text(max_size=12), st.integers(0, 1000)),
    ms.message_snapshot(),
)
MESSAGES = st.lists(MESSAGE, max_size=3)
SOME_MESSAGES = st.lists(MESSAGE, min_size=1, max_size=3)
SNAP_MODES = st.sampled_from(["keep", "delete", "corrupt", "stale"])
# Strategies are built once: building one per draw costs more than the store does.
DATETIMES = ms.aware_datetimes()
MODES = ms.operating_mode()
CONTEXTS = ms.conversation_context()
STATES = ms.session_state()
MODE_HISTORIES = st.lists(st.tuples(MODES, DATETIMES), max_size=2)
CONVERSATIONS = ms.conversation_snapshot(max_messages=3)
CHECKPOINT_METAS = st.lists(ms.checkpoint_metadata(), max_size=1)


def past(days: int) -> datetime:
    return NOW - timedelta(days=days, hours=12)


@st.composite
def session_metadata(draw: st.DrawFn, sid: UUID) -> SessionMetadata:
    """Metadata as a caller passes it, including store-owned fields it must ignore."""
    return SessionMetadata(
        id=sid,
        title=draw(TITLES),
        created_at=draw(DATETIMES),
        updated_at=draw(DATETIMES),
        last_accessed=past(draw(st.integers(0, 30))),
        message_count=draw(st.sampled_from([0, 0, 7])),
        turn_count=draw(st.integers(0, 50)),
        current_mode=draw(MODES),
        model=draw(st.sampled_from(["", "gpt-5", "o3"])),
        tags=draw(TAG_LISTS),
        is_favorite=draw(st.booleans()),
        file_size=draw(st.sampled_from([0, 123456])),
        compression_ratio=draw(st.sampled_from([1.0, 9.5])),
        format_version=draw(st.sampled_from([2, 3])),
        checkpoints=draw(CHECKPOINT_METAS),
    )


class SessionStoreMachine(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="agcx-stateful-")
        self.root = os.path.join(self.dir, "history")
        self.oracle = Oracle()
        self.store: SessionStore | None = None
        self.options: dict[str, object] = {}
        self.old_snaps: dict[str, bytes] | None = None

    # -- helpers ----------------------------------------------------------------------------

    @property
    def s(self) -> SessionStore:
        assert self.store is not None
        return self.store

    def last_seq(self) -> int:
        return self.s.journal.last_seq

    def refused(self, exc: type[Exception], fn: object, *args: object) -> None:
        """``fn(*args)`` raises ``exc`` and writes nothing."""
        before = self.last_seq()
        with pytest.raises(exc):
            fn(*args)
        assert self.last_seq() == before

    def snap_dir(self) -> str:
        return os.path.join(self.root, "projections")

    def read_snaps(self) -> dict[str, bytes]:
        out = {}
        for name in os.listdir(self.snap_dir()):
            with open(os.path.join(self.snap_dir(), name), "rb") as f:
                out[name] = f.read()
        return out

    def save(
        self, sid: UUID, meta: SessionMetadata, conv: ConversationSnapshot, state: SessionState
    ) -> None:
        before = self.last_seq()
        seq = self.s.save_session(sid, meta, conv, state)
        assert seq == before + 1
        written = self.s.journal.decode(self.s.journal.read(seq))
        event("delta save" if written["base"] else "full save")
        self.oracle.save(sid, meta, conv, state)

    # -- setup ------------------------------------------------------------------------------

    @initialize(
        target=sessions,
        segment_size=st.sampled_from([4096, 1 << 20]),
        max_chain=st.sampled_from([2, 3, 64]),
        data=st.data(),
    )
    def open_store_with_two_sessions(
        self, segment_size: int, max_chain: int, data: st.DataObject
    ) -> MultipleResults[UUID]:
        self.options = {
            "segment_size": segment_size,
            "max_chain": max_chain,
            "durability": "none",
        }
        self.store = SessionStore.open(self.root, **self.options)
        return multiple(self.new_session(data), self.new_session(data))

    def teardown(self) -> None:
        if self.store is not None:
            self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- sessions ---------------------------------------------------------------------------

    @rule(target=sessions, data=st.data())
    def create_session(self, data: st.DataObject) -> UUID:
        return self.new_session(data)

    def new_session(self, data: st.DataObject) -> UUID:
        sid = uuid4()
        conv = ConversationSnapshot(
            sid,
            data.draw(SOME_MESSAGES),
            data.draw(CONTEXTS),
            data.draw(MODE_HISTORIES),
        )
        self.save(sid, data.draw(session_metadata(sid)), conv, data.draw(STATES))
        return sid

    @rule(sid=sessions, data=st.data())
    def save_extending_the_conversation(self, sid: UUID, data: st.DataObject) -> None:
        cur = self.oracle.sessions.get(sid)
        if cur is None:  # saving a deleted session creates it again
            conv = ConversationSnapshot(sid, data.draw(MESSAGES))
            meta, state = data.draw(session_metadata(sid)), SessionState()
        else:
            new: list[MessageSnapshot] = data.draw(MESSAGES)
            conv = replace(cur.conversation, messages=(*cur.conversation.messages, *new))
            if data.draw(st.booleans()):
                conv = replace(conv, context=data.draw(CONTEXTS))
            if data.draw(st.booleans()):
                conv = replace(
                    conv,
                    mode_history=(*conv.mode_history, (data.draw(MODES), NOW)),
                )
            state = data.draw(STATES) if data.draw(st.booleans()) else cur.state
            meta = replace(
                cur.meta,
                title=data.draw(st.sampled_from([cur.meta.title, "renamed by save"])),
                message_count=data.draw(st.sampled_from([0, len(conv.messages)])),
            )
        self.save(sid, meta, conv, state)

    @rule(sid=sessions, data=st.data())
    def save_rewriting_the_conversation(self, sid: UUID, data: st.DataObject) -> None:
        cur = self.oracle.sessions.get(sid)
        old = cur.conversation if cur else ConversationSnapshot(sid)
        how = data.draw(st.sampled_from(["truncate", "replace", "new id"]))
        if how == "truncate":
            keep = data.draw(st.integers(0, max(0, len(old.messages) - 1)))
            conv = replace(old, messages=(*old.messages[:keep], *data.draw(MESSAGES)))
        elif how == "replace":
            conv = replace(old, messages=data.draw(MESSAGES))
        else:  # same messages, another conversation id: refused
            conv = replace(old, id=uuid4())
        meta = cur.meta if cur else data.draw(session_metadata(sid))
        if conv.id != sid:
            self.refused(InvalidArgument, self.s.save_session, sid, meta, conv, SessionState())
            return
        self.save(sid, meta, conv, data.draw(STATES))

    @rule(sid=sessions)
    def delete_session(self, sid: UUID) -> None:
        if sid in self.oracle.sessions:
            self.s.delete_session(sid)
            self.oracle.delete(sid)
        else:
            self.refused(SessionNotFound, self.s.delete_session, sid)

    @rule(
        sid=sessions,
        how=st.sampled_from(["tag", "untag", "favorite", "rename", "touch"]),
        tags=TAG_LISTS,
        flag=st.booleans(),
        title=TITLES,
    )
    def edit_metadata(self, sid: UUID, how: str, tags: list[str], flag: bool, title: str) -> None:
        """Tag, untag, favorite, rename or touch (one rule: saves stay frequent)."""
        s, oracle = self.s, self.oracle
        call, args = {
            "tag": (s.tag, tags),
            "untag": (s.untag, tags),
            "favorite": (s.set_favorite, [flag]),
            "rename": (s.rename, [title]),
            "touch": (s.touch, []),
        }[how]
        if how in ("tag", "untag") and not tags:  # nothing to change: refused
            self.refused(InvalidArgument, call, sid)
            return
        if sid not in oracle.sessions:
            self.refused(SessionNotFound, call, sid, *args)
            return
        before = datetime.now(UTC)
        call(sid, *args)
        after = datetime.now(UTC)
        if how == "tag":
            oracle.change_tags(sid, add=list(dict.fromkeys(tags)))
        elif how == "untag":
            oracle.change_tags(sid, remove=tags)
        elif how == "favorite":
            oracle.set_favorite(sid, flag)
        elif how == "rename":
            oracle.rename(sid, title)
        else:  # touch: "now", as the store saw it
            at = s.get_metadata(sid).last_accessed
            assert before <= at <= after
            oracle.touch(sid, at)

    @rule(
        max_age_days=st.none() | st.integers(1, 40),
        max_count=st.none() | st.integers(0, 8),
    )
    def cleanup_old_sessions(self, max_age_days: int | None, max_count: int | None) -> None:
        want = self.oracle.cleanup(max_age_days, max_count)
        assert self.s.cleanup_old_sessions(max_age_days, max_count) == want

    # -- checkpoints ------------------------------------------------------------------------

    @rule(sid=sessions, data=st.data())
    def create_checkpoint(self, sid: UUID, data: st.DataObject) -> None:
        cur = self.oracle.sessions.get(sid)
        conv = (
            cur.conversation
            if cur is not None and data.draw(st.booleans())
            else data.draw(CONVERSATIONS)
        )
        state = data.draw(STATES)
        name = data.draw(st.sampled_from(["", "before refactor"]))
        description = data.draw(st.none() | st.just("why"))
        if cur is None:
            self.refused(
                SessionNotFound, lambda: self.s.create_checkpoint(sid, uuid4(), conv, state)
            )
            return
        # Sometimes reuse an id: the new checkpoint replaces the old one.
        cid = data.draw(st.sampled_from([uuid4(), *cur.checkpoints]))
        before = datetime.now(UTC)
        meta = self.s.create_checkpoint(sid, cid, conv, state, name=name, description=description)
        after = datetime.now(UTC)
        assert before <= meta.created_at <= after
        assert (meta.id, meta.name, meta.description) == (cid, name, description)
        assert meta.message_index == len(conv.messages)
        self.oracle.create_checkpoint(sid, meta, conv, state)

    @rule(sid=sessions, data=st.data())
    def delete_checkpoint(self, sid: UUID, data: st.DataObject) -> None:
        cur = self.oracle.sessions.get(sid)
        if cur is None:
            self.refused(SessionNotFound, self.s.delete_checkpoint, sid, uuid4())
            return
        cid = data.draw(st.sampled_from([uuid4(), *cur.checkpoints]))
        if cid in cur.checkpoints:
            self.s.delete_checkpoint(sid, cid)
            self.oracle.delete_checkpoint(sid, cid)
        else:
            self.refused(CheckpointNotFound, self.s.delete_checkpoint, sid, cid)
            self.refused(CheckpointNotFound, self.s.load_checkpoint, sid, cid)

    # -- reopening --------------------------------------------------------------------------

    @rule(mode=SNAP_MODES)
    def close_and_reopen(self, mode: str) -> None:
        self.s.close()
        self.store = None
        with Journal.open(self.root, readonly=True) as journal:
            last = journal.last_seq
        snaps = self.read_snaps()
        assert sorted(snaps) == ["contents.snap", "graphs.snap", "index.snap", "stats.snap"]
        expect_restored = True
        replay = 0
        if mode == "delete":
            shutil.rmtree(self.snap_dir())
            expect_restored, replay = False, last
        elif mode == "corrupt":
            path = os.path.join(self.snap_dir(), "contents.snap")
            blob = bytearray(snaps["contents.snap"])
            blob[len(blob) // 2] ^= 0x40
            with open(path, "wb") as f:
                f.write(blob)
            expect_restored, replay = False, last
        elif mode == "stale" and self.old_snaps is not None:
            # Snaps of an earlier close: still valid, they cover less of the log.
            for name, blob in self.old_snaps.items():
                with open(os.path.join(self.snap_dir(), name), "wb") as f:
                    f.write(blob)
            replay = -1  # some tail, unknown here
        self.old_snaps = snaps
        event(f"reopen with snapshots {mode}")
        self.store = SessionStore.open(self.root, **self.options)
        runner = self.s._runner
        assert runner.restored_from_snapshot == expect_restored
        if replay >= 0:
            assert runner.replayed == replay
        assert runner.seq == last

    # -- queries ----------------------------------------------------------------------------

    @rule(query=QUERIES)
    def search_sessions(self, query: str) -> None:
        got = self.s.search_sessions(query)
        assert [m.id for m in got] == [m.id for m in self.oracle.search(query)]

    @precondition(lambda self: self.store is not None)
    @invariant()
    def answers_like_the_oracle(self) -> None:
        s, oracle = self.s, self.oracle
        listing = s.list_sessions()
        assert_listing_matches(listing, oracle)
        for meta in listing:
            sid = meta.id
            want = oracle.sessions[sid]
            assert s.session_exists(sid)
            assert s.get_metadata(sid) == meta
            got_meta, conv, state = s.load_session(sid)
            assert got_meta == meta
            assert conv == want.conversation
            assert state == want.state
            assert s.list_checkpoints(sid) == oracle.checkpoint_list(sid)
            for cid, (_, cconv, cstate) in want.checkpoints.items():
                assert s.load_checkpoint(sid, cid) == (cconv, cstate)
        stats = s.statistics()
        assert stats.total_sessions == len(oracle.sessions)
        assert stats.total_checkpoints == oracle.total_checkpoints()
        assert stats.last_seq == s.journal.last_seq


SessionStoreMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None
)
test_session_store_answers_like_an_in_memory_oracle = SessionStoreMachine.TestCase
