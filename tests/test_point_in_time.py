"""Point in time: ``SessionStore.at(when)`` and ``journal.recover`` against an oracle.

The oracle is a second, fresh store that is given the same operations one by
one; after each, its answers are snapshotted, and checked against a plain model
the test keeps of its own operations (sessions, titles, tags, favorites,
conversations, states, checkpoints), so the oracle does not rest on the code
under test alone. A view at seq S of the first
store (and a journal recovered to S) must answer exactly what the oracle
answered when it had seen S events.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journal import (
    CheckpointNotFound,
    ConversationSnapshot,
    HorizonError,
    InputText,
    InvalidArgument,
    Message,
    MessageMetadata,
    MessageSnapshot,
    OperatingMode,
    PointInTimeView,
    SessionMetadata,
    SessionNotFound,
    SessionState,
    SessionStore,
    recover,
)

BASE = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
SIDS = [UUID(int=0x5E55_0000 + i) for i in range(3)]
CIDS = [UUID(int=0xC4EC_0000 + i) for i in range(3)]
TAGS = ["bug", "wip", "ci"]

# -- operations ---------------------------------------------------------------------------

Op = tuple[Any, ...]

_session = st.integers(0, len(SIDS) - 1)
OPS: st.SearchStrategy[Op] = st.one_of(
    st.tuples(st.just("save"), _session, st.sampled_from(["extend", "rewrite"]), st.integers(1, 3)),
    st.tuples(st.just("delete"), _session, st.sampled_from(["user", "retention"])),
    st.tuples(st.just("tag"), _session, st.sampled_from(TAGS)),
    st.tuples(st.just("untag"), _session, st.sampled_from(TAGS)),
    st.tuples(st.just("rename"), _session, st.sampled_from(["alpha", "beta", "gamma"])),
    st.tuples(st.just("favorite"), _session, st.booleans()),
    st.tuples(st.just("checkpoint"), _session, st.integers(0, len(CIDS) - 1)),
    st.tuples(st.just("uncheckpoint"), _session, st.integers(0, len(CIDS) - 1)),
)


@dataclass
class Model:
    """What the operations applied so far say a reader must see: plain values,
    written by the test from its own operations (the independent oracle)."""

    sessions: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    base: dict[UUID, dict[str, Any]] = field(default_factory=dict)  # what the caller last saved

    def view(self) -> list[Any]:
        return sorted(
            (sid, m["title"], tuple(m["tags"]), m["fav"], m["conv"], m["state"], sorted(m["cps"]))
            for sid, m in self.sessions.items()
        )


def seen(answered: Any) -> list[Any]:
    """The part of :func:`answers` the model predicts."""
    return sorted(
        (a[0], a[1], tuple(a[2]), a[3], a[7], a[8], sorted(c[0] for c in a[9]))
        for a in answered[0]
    )


@dataclass
class Driver:
    """Applies operations to a store; the same ops give the same events in any store."""

    store: SessionStore
    messages: dict[int, list[MessageSnapshot]] = field(default_factory=dict)
    convs: dict[int, UUID] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    model: Model = field(default_factory=Model)

    def _note(self, kind: str, op: Op, sid: UUID, **saved: Any) -> None:
        """Apply an operation the store accepted to the model."""
        m = self.model.sessions
        if kind == "save":
            mine = {"title": saved["title"], "tags": list(saved["tags"]), "fav": saved["fav"]}
            held = m.get(sid)
            merged = {**mine, "tags": list(mine["tags"])}
            if held is not None:
                # A save merges its metadata three ways against what this caller
                # last saved (journal/_merge.py): a field it left as it was keeps
                # the current value; tags merge as a set.
                base = self.model.base.get(sid, held)
                for key in ("title", "fav"):
                    if mine[key] == base[key]:
                        merged[key] = held[key]
                b, h = base["tags"], held["tags"]
                if mine["tags"] == b:
                    merged["tags"] = list(h)
                elif h not in (b, mine["tags"]):
                    tags = [x for x in h if x in mine["tags"] or x not in b]
                    tags += [x for x in mine["tags"] if x not in b and x not in tags]
                    merged["tags"] = tags
            self.model.base[sid] = mine
            cps = held["cps"] if held is not None else set()
            m[sid] = {**saved, **merged, "cps": cps}
        elif kind == "delete":
            m.pop(sid, None)
        elif sid not in m:
            pass  # (an edit of a session that does not exist changes nothing)
        elif kind == "tag" and op[2] not in m[sid]["tags"]:
            m[sid]["tags"].append(op[2])
        elif kind == "untag" and op[2] in m[sid]["tags"]:
            m[sid]["tags"].remove(op[2])
        elif kind == "rename":
            m[sid]["title"] = op[2]
        elif kind == "favorite":
            m[sid]["fav"] = op[2]
        elif kind == "checkpoint":
            m[sid]["cps"].add(CIDS[op[2]])
        elif kind == "uncheckpoint":
            m[sid]["cps"].discard(CIDS[op[2]])

    def _message(self, s: int) -> MessageSnapshot:
        n = next(self.counter)
        return MessageSnapshot(
            item=Message(role="user" if n % 2 else "assistant", content=(InputText(f"m{n}"),)),
            timestamp=BASE + timedelta(seconds=n),
            turn_index=n,
            metadata=MessageMetadata(message_id=UUID(int=0xA5_0000 + n)),
        )

    def apply(self, k: int, op: Op) -> bool:
        """Apply op number ``k``; False if the store refused it (nothing written)."""
        kind, s = op[0], op[1]
        sid = SIDS[s]
        try:
            if kind == "save":
                old = self.messages.get(s, [])
                if op[2] == "extend" or not old:
                    new = [*old, *(self._message(s) for _ in range(op[3]))]
                else:
                    new = [*old[:-1], *(self._message(s) for _ in range(op[3]))]
                conv = self.convs.setdefault(s, sid)
                meta = SessionMetadata(
                    id=sid,
                    title=f"session {s}",
                    created_at=BASE,
                    updated_at=BASE + timedelta(minutes=k),
                    last_accessed=BASE + timedelta(minutes=k),
                    current_mode=OperatingMode.BUILD if k % 2 else OperatingMode.PLAN,
                    tags=("saved",) if k % 3 == 0 else (),
                )
                snapshot = ConversationSnapshot(conv, tuple(new))
                self.store.save_session(sid, meta, snapshot, SessionState(cursor_position=k))
                self.messages[s] = new
                self._note(
                    kind, op, sid, title=meta.title, tags=list(meta.tags), fav=meta.is_favorite,
                    conv=snapshot, state=SessionState(cursor_position=k),
                )
                return True
            elif kind == "delete":
                self.store.delete_session(sid, reason=op[2])
                self.messages.pop(s, None)
            elif kind == "tag":
                self.store.tag(sid, op[2])
            elif kind == "untag":
                self.store.untag(sid, op[2])
            elif kind == "rename":
                self.store.rename(sid, op[2])
            elif kind == "favorite":
                self.store.set_favorite(sid, op[2])
            elif kind == "checkpoint":
                conv = ConversationSnapshot(
                    self.convs.get(s, UUID(int=1)), tuple(self.messages.get(s, ()))
                )
                self.store.create_checkpoint(
                    sid, CIDS[op[2]], conv, SessionState(scroll_offset=k), name=f"cp{k}"
                )
            elif kind == "uncheckpoint":
                self.store.delete_checkpoint(sid, CIDS[op[2]])
            else:
                raise AssertionError(kind)
        except (SessionNotFound, CheckpointNotFound):
            return False
        self._note(kind, op, sid)
        return True


def answers(q: SessionStore | PointInTimeView) -> Any:
    """Everything a reader can ask, in a comparable form.

    Checkpoint creation times are the real clock's, so they (and the stored
    sizes, which their encoding changes) are left out.
    """
    out = []
    for m in q.list_sessions():
        meta, conv, state = q.load_session(m.id)
        cps = []
        for c in meta.checkpoints:
            cconv, cstate = q.load_checkpoint(m.id, c.id)
            cps.append((c.id, c.name, c.message_index, cconv, cstate))
        out.append(
            (
                m.id,
                m.title,
                m.tags,
                m.is_favorite,
                m.message_count,
                m.current_mode,
                m.last_accessed,
                conv,
                state,
                sorted(cps, key=lambda c: c[0].bytes),
            )
        )
    stats = q.statistics()
    history = [(h.seq, h.event, h.session_id, h.summary) for h in q.history()]
    return (
        out,
        stats.total_sessions,
        stats.total_checkpoints,
        dict(stats.events_by_type),
        stats.last_seq,
        history,
    )


def open_store(path: Path) -> SessionStore:
    return SessionStore.open(path, durability="none", snapshots=False)


def build(root: Path, ops: list[Op]) -> tuple[SessionStore, dict[int, Any]]:
    """Apply ``ops`` to a store at ``root`` and to a fresh oracle; the oracle's answers by seq."""
    store = open_store(root / "store")
    oracle = open_store(root / "oracle")
    # Read through a view: a load would make the oracle's next save merge
    # against what it loaded (journal/_merge.py), unlike the store's.
    snapshots = {0: answers(oracle.at(0))}
    d_store, d_oracle = Driver(store), Driver(oracle)
    for k, op in enumerate(ops):
        applied = d_store.apply(k, op)
        assert d_oracle.apply(k, op) == applied
        if applied:
            seq = oracle.journal.last_seq
            snapshots[seq] = answers(oracle.at(seq))
            # The oracle store itself answers what the test's own model says.
            assert seen(snapshots[seq]) == d_oracle.model.view(), op
    oracle.close()
    assert store.journal.last_seq == max(snapshots)
    return store, snapshots


# -- the oracle properties -----------------------------------------------------------------


@settings(max_examples=60)
@given(ops=st.lists(OPS, min_size=1, max_size=30))
def test_a_view_at_every_seq_answers_like_a_store_that_saw_only_that_much(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Op]
) -> None:
    root = tmp_path_factory.mktemp("pit")
    store, snapshots = build(root, ops)
    with store:
        for seq, expected in snapshots.items():
            view = store.at(seq)
            assert view.seq == seq
            assert answers(view) == expected, f"at seq {seq}"
        # The live store is the view at its last seq.
        assert answers(store) == snapshots[max(snapshots)]


@settings(max_examples=15)
@given(ops=st.lists(OPS, min_size=1, max_size=16), data=st.data())
def test_a_recovered_journal_opens_and_answers_like_the_view(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Op], data: st.DataObject
) -> None:
    root = tmp_path_factory.mktemp("rec")
    store, snapshots = build(root, ops)
    with store:
        seq = data.draw(st.sampled_from(sorted(snapshots)), label="seq")
        report = recover(root / "store", root / "recovered", at=seq, batch_bytes=300)
        assert report.seq == seq and report.records == seq
    with open_store(root / "recovered") as rec:
        assert rec.journal.last_seq == seq
        assert answers(rec) == snapshots[seq]
        # An independent, working store: carry on writing.
        if rec.list_sessions():
            rec.rename(rec.list_sessions()[0].id, "after recovery")
    with open_store(root / "store") as again:
        assert again.journal.last_seq == max(snapshots)


# -- points given as times ----------------------------------------------------------------


def test_a_time_stands_for_the_last_event_at_or_before_it(tmp_path: Path) -> None:
    ops: list[Op] = [("save", 0, "extend", 2), ("tag", 0, "bug"), ("save", 1, "extend", 1)]
    ops += [("rename", 0, "alpha"), ("delete", 1, "retention"), ("favorite", 0, True)]
    store, snapshots = build(tmp_path, ops)
    with store:
        records = list(store.journal.scan())
        for rec in records:
            # Round the record's time up to a whole microsecond (datetime's precision).
            micros = -(-rec.ts_ns // 1000)
            when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
            expected = max(r.seq for r in records if r.ts_ns <= micros * 1000)
            view = store.at(when)
            assert view.seq == expected
            assert answers(view) == snapshots[expected]
        before_all = datetime.fromtimestamp(records[0].ts_ns / 1e9 - 1, UTC)
        assert store.at(before_all).seq == 0
        assert store.at(before_all).list_sessions() == []
        # A session deleted later is alive in a view before the deletion.
        deleted_at = next(r.seq for r in records if r.event_type == 2)
        assert SIDS[1] in {m.id for m in store.at(deleted_at - 1).list_sessions()}
        assert SIDS[1] not in {m.id for m in store.at(deleted_at).list_sessions()}
        assert [h.seq for h in store.at(3).history()] == [1, 2, 3]
        assert [h.seq for h in store.at(3).history(SIDS[0])] == [1, 2]


def test_naive_future_and_malformed_points_are_refused(tmp_path: Path) -> None:
    store, _ = build(tmp_path, [("save", 0, "extend", 1), ("tag", 0, "bug")])
    with store:
        with pytest.raises(InvalidArgument, match="timezone"):
            store.at(datetime(2024, 5, 1, 10, 0))
        with pytest.raises(InvalidArgument, match="future"):
            store.at(datetime.now(UTC) + timedelta(hours=1))
        with pytest.raises(InvalidArgument, match="future"):
            store.at(3)
        with pytest.raises(InvalidArgument):
            store.at(-1)
        with pytest.raises(InvalidArgument):
            store.at("seq:1")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            store.at(True)
        with pytest.raises(InvalidArgument, match="timezone"):
            recover(tmp_path / "store", tmp_path / "out", at=datetime(2024, 5, 1, 10, 0))
        assert not (tmp_path / "out").exists()


def test_a_view_never_sees_later_events_nor_changes_when_the_store_moves_on(
    tmp_path: Path,
) -> None:
    store, snapshots = build(tmp_path, [("save", 0, "extend", 1), ("tag", 0, "bug")])
    with store:
        view = store.at(1)
        Driver(store).apply(10, ("save", 0, "extend", 2))
        store.rename(SIDS[0], "later")
        assert answers(view) == snapshots[1]
        assert store.get_metadata(SIDS[0]).title == "later"


# -- the compaction horizon ---------------------------------------------------------------


def test_a_point_before_the_horizon_names_the_earliest_recoverable_point(tmp_path: Path) -> None:
    root = tmp_path / "j"
    store = SessionStore.open(root, durability="none", segment_size=4096)
    d = Driver(store)
    for k in range(40):
        d.apply(k, ("save", k % 3, "extend", 2))
        d.apply(k, ("tag", k % 3, TAGS[k % 3]))
    try:
        store.compact(retain=timedelta(0))
    except AttributeError:  # pragma: no cover - compaction not in this build
        pytest.skip("SessionStore.compact is not available")
    with store:
        horizon = store.journal.statistics().horizon_seq
        assert horizon > 1
        with pytest.raises(HorizonError) as err:
            store.at(horizon - 1)
        assert err.value.earliest_seq == horizon
        assert f"seq {horizon}" in str(err.value)
        with pytest.raises(HorizonError):
            store.at(datetime(2000, 1, 1, tzinfo=UTC))
        with pytest.raises(HorizonError):
            recover(root, tmp_path / "out", at=horizon - 1)
        assert not (tmp_path / "out").exists()
        at_horizon = answers_light(store.at(horizon))
        report = recover(root, tmp_path / "out", at=horizon)
        assert report.seq == horizon
    with open_store(tmp_path / "out") as rec:
        assert answers_light(rec) == at_horizon
        # The recovered journal keeps a horizon: the records compaction folded the
        # history into keep their seqs (with gaps), and points among them are refused.
        folded = [r.seq for r in rec.journal.scan()]
        assert rec.journal.statistics().horizon_seq == folded[-1] <= horizon
        assert answers_light(rec.at(folded[-1])) == at_horizon
        if folded[-1] > 1:
            with pytest.raises(HorizonError):
                rec.at(folded[-1] - 1)
        save_seq = Driver(rec).apply(99, ("rename", 0, "after")) and rec.journal.last_seq
        assert save_seq == folded[-1] + 1
        assert rec.at(save_seq).get_metadata(SIDS[0]).title == "after"


def answers_light(q: SessionStore | PointInTimeView) -> Any:
    """Sessions and their contents (for stores whose history was compacted)."""
    return [(m.id, m.title, m.tags, q.load_session(m.id)[1:]) for m in q.list_sessions()]


def test_a_views_statistics_describe_the_journal_as_of_its_seq(tmp_path: Path) -> None:
    # No checkpoints: their real-clock creation time would make record sizes differ.
    ops: list[Op] = []
    for k in range(30):
        ops += [("save", k % 3, "extend", 3), ("tag", k % 3, TAGS[k % 3])]
    store = SessionStore.open(tmp_path / "s", durability="none", segment_size=4096)
    oracle = SessionStore.open(tmp_path / "o", durability="none", segment_size=4096)
    expected = {}
    d_store, d_oracle = Driver(store), Driver(oracle)
    for k, op in enumerate(ops):
        d_store.apply(k, op)
        d_oracle.apply(k, op)
        st = oracle.statistics()
        expected[st.last_seq] = (st.total_size_bytes, st.segments, st.records)
    oracle.close()
    with store:
        assert store.journal.statistics().segments > 3
        for seq, want in expected.items():
            st = store.at(seq).statistics()
            assert (st.total_size_bytes, st.segments, st.records) == want, seq
