"""The load path and the size of a save.

* A delta ``SessionSaved`` carries only the metadata keys that changed since
  the session's last event (``"md"``, schema 2) and no conversation id; the
  session index merges them into the map it holds. Every answer (live, at
  every seq, after a reopen, after compaction, after recovery) is the one a
  store writing the whole map (``"meta"``, schema 1) gives, and journals of
  schema-1 records keep loading.
* ``load_session`` reads a chain with one ``Journal.read_many`` and decodes it
  with the cyclic GC paused, which it leaves as it found it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from uuid import UUID, uuid4

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

import journal._store
from journal import (
    CorruptJournal,
    Journal,
    SessionNotFound,
    SessionStore,
    recover,
)
from journal._errors import CorruptPayload
from journal._events import SCHEMA_VERSION, EventType, upcast
from journal._wire import metadata_to_wire
from tests._store_worker import T0, conversation
from tests.test_point_in_time import OPS, Driver, Op, answers
from tools._verify import verify


@contextmanager
def whole_metadata() -> Iterator[None]:
    """Saves in this block write the whole metadata map (schema 1), as before "md"."""
    def schema_1(meta: dict[str, Any], changes: dict[str, Any], cid: UUID) -> dict[str, Any]:
        # As a full save of this build, it names the keys that changed.
        return {"v": SCHEMA_VERSION, "meta": meta, "cid": cid.bytes, "ch": list(changes)}

    with mock.patch.object(journal._store, "_delta_head", schema_1):
        yield


def metadata(sid: UUID, title: str, **fields: Any) -> journal.SessionMetadata:
    return journal.SessionMetadata(sid, title, T0, T0, T0, model="gpt-test", **fields)


def sans_size(m: journal.SessionMetadata) -> journal.SessionMetadata:
    """The metadata without the stored sizes (which compaction changes)."""
    return replace(m, file_size=0, compression_ratio=1.0)


def open_store(path: Path, **opts: Any) -> SessionStore:
    return SessionStore.open(path, durability="none", snapshots=False, **opts)


def saved_events(j: Journal) -> list[dict[str, Any]]:
    return [
        upcast(r.event_type, j.decode(r))
        for r in j.scan()
        if r.event_type == EventType.SESSION_SAVED
    ]


def drive(store: SessionStore, ops: list[Op], old_layout: bool) -> list[int]:
    """Apply ``ops``; the seqs after each applied one."""
    d, seqs = Driver(store), []
    for k, op in enumerate(ops):
        if old_layout:
            with whole_metadata():
                applied = d.apply(k, op)
        else:
            applied = d.apply(k, op)
        if applied:
            seqs.append(store.journal.last_seq)
    return seqs


# -- partial metadata answers what whole metadata answered ------------------------------------


# Mostly saves of two sessions: runs of delta saves, with metadata events between.
_SAVE = st.tuples(
    st.just("save"),
    st.integers(0, 1),
    st.sampled_from(["extend", "extend", "rewrite"]),
    st.integers(1, 3),
)
MOSTLY_SAVES = st.one_of(_SAVE, _SAVE, OPS)


@settings(max_examples=60)
@given(ops=st.lists(MOSTLY_SAVES, min_size=1, max_size=30))
@example(ops=[("save", 0, "extend", 1), ("save", 0, "extend", 1), ("tag", 0, "bug")] * 2)
@example(ops=[("save", 0, "extend", 1), *[("save", 0, "extend", 3)] * 3, ("save", 0, "extend", 1)])
def test_a_store_writing_changed_keys_answers_like_one_writing_whole_maps_at_every_seq(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Op]
) -> None:
    root = tmp_path_factory.mktemp("md")
    # Smaller deltas reach ``full_ratio`` later, so with the default policy the
    # two stores would write their full saves at other seqs (and say so in
    # their history): full saves only where the content is rewritten.
    policy: dict[str, Any] = {"full_ratio": 1e9, "max_chain": 10**6}
    with open_store(root / "new", **policy) as new, open_store(root / "old", **policy) as old:
        seqs = drive(new, ops, old_layout=False)
        assert drive(old, ops, old_layout=True) == seqs
        for seq in [0, *seqs]:
            assert answers(new.at(seq)) == answers(old.at(seq)), f"at seq {seq}"
        assert answers(new) == answers(old)
        final = answers(new)
        new_bytes = new.journal.statistics().bytes
        assert new_bytes <= old.journal.statistics().bytes
    with open_store(root / "new") as again:  # replayed from the log, no snapshots
        assert answers(again) == final


@settings(max_examples=15)
@given(ops=st.lists(MOSTLY_SAVES, min_size=1, max_size=20), data=st.data())
def test_old_layout_journals_load_and_take_new_saves_like_new_ones(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Op], data: st.DataObject
) -> None:
    root = tmp_path_factory.mktemp("mix")
    cut = data.draw(st.integers(0, len(ops)))
    # Schema-1 records first, then this build's, in one journal; and the same ops
    # written by this build throughout.
    with open_store(root / "mixed") as s:
        d = Driver(s)
        for k, op in enumerate(ops[:cut]):
            with whole_metadata():
                d.apply(k, op)
    # The new one reopened at the cut too: a reopened store has no base of its
    # own for a save's metadata merge (it merges against the last save's).
    with open_store(root / "new") as n:
        dn = Driver(n)
        for k, op in enumerate(ops[:cut]):
            dn.apply(k, op)
    with open_store(root / "mixed") as s, open_store(root / "new") as n:
        d.store, dn.store = s, n
        for k, op in enumerate(ops[cut:], cut):
            d.apply(k, op)
            dn.apply(k, op)
        assert answers(s) == answers(n)


def test_a_delta_save_carries_only_the_metadata_keys_that_changed(root: Path) -> None:
    sid = cid = uuid4()
    keys = [f"m{i}" for i in range(6)]
    meta = metadata(sid, "title", tags=["a"])
    with open_store(root) as s:
        s.save_session(sid, meta, conversation(cid, keys[:2]), journal.SessionState())
        meta = metadata(sid, "title", tags=["a"], message_count=4, turn_count=2)
        s.save_session(sid, meta, conversation(cid, keys[:4]), journal.SessionState())
        s.tag(sid, "b")  # the index now holds tags [a, b]; the next save says [a]
        s.set_favorite(sid, True)
        meta = metadata(sid, "title", tags=["a"], message_count=6, is_favorite=True)
        # mc and tc changed; the caller left tg as it saved it (the tag made
        # meanwhile stays); fv it set as it already is.
        s.save_session(sid, meta, conversation(cid, keys), journal.SessionState())
        full, d1, d2 = saved_events(s.journal)
        assert full["v"] == SCHEMA_VERSION and "md" not in full and full["cid"] == cid.bytes
        first = metadata_to_wire(
            metadata(sid, "title", tags=["a"], message_count=2, turn_count=2)
        )
        assert full["meta"] == {k: v for k, v in first.items() if k != "ck"}
        for d in (d1, d2):
            assert d["v"] == SCHEMA_VERSION and "meta" not in d and "cid" not in d and d["base"] > 0
        # The counts are the conversation's (turn indexes 0..n-1), not the caller's.
        assert d1["md"] == {"mc": 4, "tc": 4}
        assert d2["md"] == {"mc": 6, "tc": 6}
        got = s.get_metadata(sid)
        assert (got.tags, got.is_favorite, got.message_count) == (("a", "b"), True, 6)
        assert s.load_session(sid)[1] == conversation(cid, keys)


def test_full_saves_and_sessions_saved_anew_carry_the_whole_map(root: Path) -> None:
    sid = cid = uuid4()
    with open_store(root, max_chain=2) as s:
        for n in range(1, 6):
            m = metadata(sid, f"t{n}", message_count=n)
            s.save_session(
                sid, m, conversation(cid, [str(i) for i in range(n)]), journal.SessionState()
            )
        s.delete_session(sid)
        s.save_session(
            sid, metadata(sid, "again"), conversation(cid, ["x"]), journal.SessionState()
        )
        kinds = [("meta" in e, "md" in e, e["base"]) for e in saved_events(s.journal)]
        assert kinds == [
            (True, False, 0),
            (False, True, 1),
            (True, False, 0),  # max_chain=2: a full save again
            (False, True, 3),
            (True, False, 0),
            (True, False, 0),  # a new life of the session
        ]
        assert s.get_metadata(sid).title == "again"


# -- compaction, recovery, verify ------------------------------------------------------------


def test_compaction_folds_changed_keys_into_one_whole_map(root: Path) -> None:
    opts: dict[str, Any] = {"segment_size": 4096}
    with open_store(root, **opts) as s:
        sids = [uuid4() for _ in range(3)]
        for turn in range(1, 12):
            for i, sid in enumerate(sids):
                keys = [f"{sid}/{k}" for k in range(turn * 2)]
                meta = metadata(sid, f"s{i}", message_count=turn * 2, turn_count=turn)
                s.save_session(
                    sid, meta, conversation(sid, keys), journal.SessionState()
                )
            if turn == 5:
                s.tag(sids[0], "kept")
                s.rename(sids[1], "renamed")
        s.journal.seal_active()
        before = answers(s)[0]  # sessions, contents, checkpoints (not the history)
        metas = {sid: sans_size(s.get_metadata(sid)) for sid in sids}
        report = s.compact(retain=timedelta(0))
        assert report.records_after < report.records_before
        assert answers(s)[0] == before
        folded = [e for e in saved_events(s.journal) if e["base"] == 0]
        assert len(folded) == 3 and all("meta" in e and e["v"] == SCHEMA_VERSION for e in folded)
    with open_store(root, **opts) as s:
        assert answers(s)[0] == before
        assert {sid: sans_size(s.get_metadata(sid)) for sid in sids} == metas
    assert verify(str(root)).intact


def test_recovery_to_a_seq_and_verify_read_changed_keys(tmp_path: Path) -> None:
    sid = cid = uuid4()
    with open_store(tmp_path / "j") as s:
        for n in range(1, 8):
            m = metadata(sid, "t", message_count=n, turn_count=n)
            s.save_session(
                sid, m, conversation(cid, [str(i) for i in range(n)]), journal.SessionState()
            )
        mid = s.journal.last_seq - 3
        expected = answers(s.at(mid))
    report = verify(str(tmp_path / "j"))
    assert report.intact and report.events["SessionSaved"] == 7
    recover(tmp_path / "j", tmp_path / "r", at=mid)
    with open_store(tmp_path / "r") as r:
        assert answers(r) == expected
        assert r.get_metadata(sid).message_count == 4


def test_changed_keys_without_the_sessions_full_save_are_ignored(root: Path) -> None:
    # Only a salvaged journal that lost a session's full save has such a record.
    sid = uuid4()
    with Journal.open(root) as j:
        payload = {"v": 2, "md": {"mc": 3}, "base": 2, "n": 3, "msgs": b"\x90"}
        j.append(EventType.SESSION_SAVED, payload, session_id=sid)
    with open_store(root, segment_size=4096) as s:
        assert s.list_sessions() == []
        with pytest.raises(SessionNotFound):
            s.load_session(sid)
        other = uuid4()
        s.save_session(
            other, metadata(other, "x"), conversation(other, ["a"]), journal.SessionState()
        )
        s.journal.seal_active()
        s.compact(retain=timedelta(0))
        assert [m.id for m in s.list_sessions()] == [other]
    with Journal.open(root) as j:  # kept as it was, not dropped
        assert [r.seq for r in j.scan() if r.session == sid.bytes] == [1]
    assert verify(str(root)).intact


def test_verify_reports_changed_keys_that_are_not_a_map(root: Path) -> None:
    sid = uuid4()
    with open_store(root) as s:
        s.save_session(
            sid, metadata(sid, "x"), conversation(sid, ["a"]), journal.SessionState()
        )
    with Journal.open(root) as j:
        j.append(
            EventType.SESSION_SAVED,
            {"v": 2, "md": [1], "base": 1, "n": 1, "msgs": b"\x90"},
            session_id=sid,
        )
    report = verify(str(root))
    assert [p.reason for p in report.problems] == [
        "seq 2: malformed event payload (TypeError(\"metadata changes ('md') are not a map\"))"
    ]


def test_a_schema_newer_than_this_build_is_refused() -> None:
    assert upcast(EventType.SESSION_SAVED, {"v": 2, "md": {}})["v"] == 2
    assert upcast(EventType.SESSION_SAVED, {"v": SCHEMA_VERSION})["v"] == SCHEMA_VERSION
    with pytest.raises(CorruptPayload, match="upgrade agcx"):
        upcast(EventType.SESSION_SAVED, {"v": SCHEMA_VERSION + 1})


# -- the load itself ---------------------------------------------------------------------------


def test_a_load_reads_its_chain_once_and_leaves_the_gc_as_it_was(root: Path) -> None:
    sid = cid = uuid4()
    with open_store(root) as s:
        for n in range(1, 20):
            m = metadata(sid, "t", message_count=n)
            s.save_session(
                sid, m, conversation(cid, [str(i) for i in range(n)]), journal.SessionState()
            )
        s._bases.clear()
        calls: list[list[int]] = []
        read_many = s.journal.read_many

        def counting(seqs: Any) -> Any:
            calls.append(list(seqs))
            return read_many(calls[-1])

        with (
            mock.patch.object(s.journal, "read_many", counting),
            mock.patch.object(s.journal, "read", side_effect=AssertionError("read per record")),
        ):
            assert gc.isenabled()
            assert s.load_session(sid)[1] == conversation(cid, [str(i) for i in range(19)])
            assert gc.isenabled()
            gc.disable()
            try:
                s.load_session(sid)
                assert not gc.isenabled()
            finally:
                gc.enable()
        assert len(calls) == 2 and calls[0] == list(s._contents.chains[sid.bytes].seqs)
        assert len(calls[0]) > 1


def test_a_load_that_meets_damage_raises_and_leaves_the_gc_enabled(root: Path) -> None:
    sid = cid = uuid4()
    with open_store(root) as s:
        for n in range(1, 4):
            conv = conversation(cid, [str(i) for i in range(n)])
            s.save_session(sid, metadata(sid, "t"), conv, journal.SessionState())
        seqs = list(s._contents.chains[sid.bytes].seqs)
        good = s.journal.read_many(seqs)
        bad = [*good[:-1], attrs.evolve(good[-1], codec=0, payload=b"\xc1")]
        with (
            mock.patch.object(s.journal, "read_many", lambda _: bad),
            pytest.raises(CorruptJournal, match=f"seq {seqs[-1]}"),
        ):
            s.load_session(sid)
        assert gc.isenabled()
        assert s.load_session(sid)[1] == conv
