"""Trained zstd dictionaries for message blobs (journal/_dictionary.py).

The rules under test are the module's: a writer trains on one segment's saves,
blobs refer only to a dictionary in the active segment, compaction keeps the
dictionaries later records need, purge removes those trained on the session.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgpack
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from journal import CorruptPayload, RecordNotFound, SessionStore, salvage
from journal._dictionary import (
    DICTIONARY_SIZE,
    TRAIN_BYTES,
    Dictionary,
    DictionaryCache,
    Trainer,
    blob_reference,
    read_dictionary_event,
)
from journal._events import EventType, blob_dictionary, blob_of, unpack_blob, upcast
from journal._log import Entry, Journal
from journal._model import (
    ConversationContext,
    SessionMetadata,
    SessionState,
)
from journal._segment import Record
from journal._store import check_messages, full_save_payload
from journal._wire import metadata_to_wire
from tests._store_worker import QuickTrainer
from tests.test_compact import History, _all_bytes_under, _apply, _decompressed, _ops, answers
from tools._bench_agcx import AgcxPeer, to_snapshot
from tools._bench_workload import Workload, load_corpus
from tools._verify import verify

# About 2 MiB of messages: enough to train once, in one segment.
WORKLOAD = Workload(seed=3, sessions=40, turns=24, agents=2)
MORE = Workload(seed=4, sessions=4, turns=6, agents=1)


def fill(root: Path, ops: Any = None, **options: Any) -> AgcxPeer:
    """An open store holding the workload's saves (all of them by default)."""
    peer = AgcxPeer("none", **options)
    peer.open(root)
    for op in WORKLOAD.iter_saves() if ops is None else ops:
        peer.save(op)
    return peer


def events(j: Journal, event_type: int) -> list[tuple[Record, dict[str, Any]]]:
    return [(r, upcast(r.event_type, j.decode(r))) for r in j.scan() if r.event_type == event_type]


def saves(j: Journal) -> list[tuple[Record, dict[str, Any]]]:
    return events(j, EventType.SESSION_SAVED)


def assert_loads_as_saved(peer: AgcxPeer, sessions: Any = None) -> None:
    for sid in WORKLOAD.session_ids if sessions is None else sessions:
        assert peer.load(sid) == WORKLOAD.messages_of(sid), sid


@functools.cache
def sample_dictionary() -> Dictionary:
    corpus = load_corpus()
    samples = [text[i : i + 2000].encode() for _, text in corpus.files[:50] for i in (0, 4000)]
    data = zstandard.train_dictionary(16 << 10, samples).as_bytes()
    return Dictionary(7, data, frozenset())


# -- training and use --------------------------------------------------------------------------


def test_a_dictionary_is_trained_once_a_megabyte_of_messages_is_saved_and_later_saves_use_it(
    root: Path,
) -> None:
    peer = fill(root)
    j = peer.store.journal
    [(rec, ev)] = events(j, EventType.DICTIONARY_TRAINED)
    data, sources = read_dictionary_event(ev)
    assert len(data) <= DICTIONARY_SIZE and rec.session_id is None
    before = [(r, e) for r, e in saves(j) if r.seq < rec.seq]
    after = [(r, e) for r, e in saves(j) if r.seq > rec.seq]
    assert {r.session for r, _ in before} >= sources
    assert all(blob_dictionary(e) is None for _, e in before)
    sampled = sum(len(unpack_raw(j, e)) for _, e in before if len(unpack_raw(j, e)) <= 64 << 10)
    assert TRAIN_BYTES <= sampled < TRAIN_BYTES + (64 << 10)
    assert after and all(blob_dictionary(e) == rec.seq for _, e in after)
    assert_loads_as_saved(peer)
    peer.close()


def unpack_raw(j: Journal, ev: dict[str, Any]) -> bytes:
    blob = ev["msgs"]
    if blob_reference(blob) is not None:
        return j.dictionaries.unpack(blob)
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().decompress(blob)
    return bytes(blob)


def test_dictionary_blobs_take_less_room_than_the_same_messages_compressed_alone(
    root: Path,
) -> None:
    peer = fill(root)
    j = peer.store.journal
    with_dict = alone = 0
    for _, ev in saves(j):
        if blob_dictionary(ev) is not None:
            with_dict += len(ev["msgs"])
            alone += len(blob_of(unpack_raw(j, ev)))
    assert with_dict < 0.85 * alone  # measured: 0.71
    peer.close()


def test_every_session_loads_as_saved_after_a_reopen_and_in_a_reader(root: Path) -> None:
    fill(root).close()
    peer = AgcxPeer("none")
    peer.open(root)
    assert_loads_as_saved(peer)
    peer.close()
    with SessionStore.open(root, readonly=True) as reader:
        for sid in WORKLOAD.session_ids[:5]:
            _, conv, _ = reader.load_session(sid)
            assert len(conv.messages) == len(WORKLOAD.messages_of(sid))
    assert verify(str(root)).intact


def test_a_writer_reopened_on_the_same_segment_uses_its_dictionary_instead_of_training_another(
    root: Path,
) -> None:
    ops = list(WORKLOAD.iter_saves())
    fill(root, ops[: len(ops) * 2 // 3]).close()
    peer = fill(root, ops[len(ops) * 2 // 3 :])
    j = peer.store.journal
    [(rec, _)] = events(j, EventType.DICTIONARY_TRAINED)
    last = saves(j)[-1][1]
    assert blob_dictionary(last) == rec.seq
    assert_loads_as_saved(peer)
    peer.close()


def test_after_its_segment_is_sealed_a_dictionary_is_no_longer_used(root: Path) -> None:
    peer = fill(root)
    j = peer.store.journal
    j.seal_active()
    seq0 = j.last_seq
    for op in MORE.iter_saves():
        peer.save(op)
    later = [e for r, e in saves(j) if r.seq > seq0]
    assert later and all(blob_dictionary(e) is None for e in later)
    for sid in MORE.session_ids:
        assert peer.load(sid) == MORE.messages_of(sid)
    peer.close()


def test_a_blob_encoded_with_a_dictionary_whose_segment_was_sealed_before_the_commit_is_written_plain(  # noqa: E501
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = fill(root)
    store = peer.store
    j = store.journal
    stale = store._trainer.current(j.active_base)
    assert stale is not None
    j.seal_active()
    # As if the seal came between the save's encoding and its commit.
    monkeypatch.setattr(store._trainer, "current", lambda base: stale)
    seq0 = j.last_seq
    for op in MORE.iter_saves():
        peer.save(op)
    later = [e for r, e in saves(j) if r.seq > seq0]
    assert later and all(blob_dictionary(e) is None for e in later)
    for sid in MORE.session_ids:
        assert peer.load(sid) == MORE.messages_of(sid)
    peer.close()


def test_a_dictionary_trained_on_a_segment_sealed_meanwhile_is_not_appended(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = list(WORKLOAD.iter_saves())
    peer = fill(root, ops[:50])
    store = peer.store
    j = store.journal
    samples = [unpack_raw(j, e) for _, e in saves(j)]
    data = zstandard.train_dictionary(16 << 10, samples * 4).as_bytes()
    old_base = j.active_base
    j.seal_active()
    monkeypatch.setattr(store._trainer, "train", lambda: (old_base, data, frozenset()))
    store._train_dictionary()
    assert events(j, EventType.DICTIONARY_TRAINED) == []
    assert store._trainer.current(j.active_base) is None
    peer.close()


# -- compaction and purge ----------------------------------------------------------------------


def test_compaction_drops_a_dictionary_that_nothing_kept_needs(root: Path) -> None:
    peer = fill(root)
    j = peer.store.journal
    j.seal_active()
    peer.store.compact(timedelta(0))
    assert events(j, EventType.DICTIONARY_TRAINED) == []
    assert all(blob_dictionary(e) is None for _, e in saves(j))
    assert_loads_as_saved(peer)
    peer.close()
    assert verify(str(root)).intact


def test_compaction_keeps_a_dictionary_that_a_record_after_the_cut_needs(root: Path) -> None:
    peer = fill(root)
    store = peer.store
    j = store.journal
    d = store._trainer.current(j.active_base)
    assert d is not None
    j.seal_active()
    # A save whose commit rolled to the next segment after its dictionary
    # check (the segment was full) refers back to the sealed segment.
    sid = UUID(MORE.session_ids[0])
    msgs = [to_snapshot(m, 1) for m in MORE.messages_of(str(sid))]
    packed = d.pack(check_messages(msgs))
    assert packed is not None
    payload = full_save_payload(
        meta_wire_of(sid), sid, msgs, ConversationContext(), (), SessionState(), None, packed
    )
    j.append_many([Entry(EventType.SESSION_SAVED, payload, sid, compress=False)])
    store.compact(timedelta(0))
    assert [r.seq for r, _ in events(j, EventType.DICTIONARY_TRAINED)] == [d.seq]
    assert_loads_as_saved(peer)
    peer.close()
    with SessionStore.open(root, readonly=True) as reader:
        _, conv, _ = reader.load_session(sid)
        assert conv.messages == tuple(msgs)
    assert verify(str(root)).intact


def meta_wire_of(sid: UUID) -> dict[str, Any]:
    t = datetime(2025, 1, 1, tzinfo=UTC)
    wire = metadata_to_wire(SessionMetadata(sid, "late", t, t, t))
    wire.pop("ck", None)
    return wire


def test_purge_removes_the_dictionaries_trained_on_the_session_and_every_other_session_stays_whole(
    root: Path,
) -> None:
    peer = fill(root)
    store = peer.store
    j = store.journal
    [(_, dev)] = events(j, EventType.DICTIONARY_TRAINED)
    data, sources = read_dictionary_event(dev)
    victim = UUID(bytes=sorted(sources)[0])
    report = store.purge(victim)
    assert report.dictionaries_removed == 1
    assert events(j, EventType.DICTIONARY_TRAINED) == []
    assert all(blob_dictionary(e) is None for _, e in saves(j))
    others = [s for s in WORKLOAD.session_ids if UUID(s) != victim]
    assert_loads_as_saved(peer, others)
    peer.close()
    chunk = data[-4096:]  # the content part of a zstd dictionary: sampled text
    for path, blob in _all_bytes_under(root):
        assert chunk not in blob and chunk not in _decompressed(blob), path
    assert verify(str(root)).intact


# -- the blob format ---------------------------------------------------------------------------


def test_a_dictionary_blob_is_its_marker_the_dictionary_seq_and_a_zstd_frame() -> None:
    d = sample_dictionary()
    raw = msgpack.packb(["def f(x):\n    return x + 1\n" * 4], use_bin_type=True)
    blob = blob_of(raw, d)
    assert blob[0] == 0xC1 and int.from_bytes(blob[1:9], "little") == 7
    assert blob[9:13] == b"\x28\xb5\x2f\xfd" and blob_reference(blob) == 7
    assert zstandard.frame_content_size(blob[9:]) == len(raw)
    assert blob_of(b"\x91\x01", d) == b"\x91\x01"  # too short to pay: as it is


@given(
    st.lists(
        st.text(max_size=300) | st.binary(max_size=300) | st.integers(-(2**63), 2**64 - 1),
        max_size=20,
    )
)
def test_any_message_list_comes_back_from_a_dictionary_blob(obj: list[Any]) -> None:
    d = sample_dictionary()
    cache = _cache_of(d)
    blob = blob_of(msgpack.packb(obj, use_bin_type=True), d)
    assert unpack_blob(blob, "test", cache) == obj


def _cache_of(d: Dictionary) -> DictionaryCache:
    payload = {"v": 1, "d": d._zdict.as_bytes(), "src": []}
    rec = Record(d.seq, 0, EventType.DICTIONARY_TRAINED, bytes(16), 0, b"", 0, 0)

    def read(seq: int) -> Record:
        if seq != d.seq:
            raise RecordNotFound(f"no record with seq {seq}")
        return rec

    return DictionaryCache(read, lambda r: payload, EventType.DICTIONARY_TRAINED)


def test_a_damaged_dictionary_blob_is_refused_with_where_and_why() -> None:
    d = sample_dictionary()
    cache = _cache_of(d)
    raw = msgpack.packb(["import os\nimport sys\n" * 20], use_bin_type=True)
    blob = blob_of(raw, d)
    with pytest.raises(CorruptPayload, match=r"seq 9 messages: .*truncated"):
        unpack_blob(blob[:10], "seq 9 messages", cache)
    with pytest.raises(CorruptPayload, match="dictionary seq 8"):
        unpack_blob(b"\xc1" + (8).to_bytes(8, "little") + blob[9:], "m", cache)
    with pytest.raises(CorruptPayload, match="none may be"):
        unpack_blob(blob, "m", None)
    with pytest.raises(CorruptPayload, match="zstd"):
        unpack_blob(blob[:9] + b"\x00" * 8, "m", cache)
    # The declared size is checked before anything is allocated.
    huge = zstandard.ZstdCompressor(dict_data=d._zdict).compress(b"x" * (257 << 20))
    with pytest.raises(CorruptPayload, match="more than the cap"):
        unpack_blob(blob[:9] + huge, "m", cache)


def test_a_record_that_is_not_a_dictionary_is_refused_as_one(root: Path) -> None:
    with Journal.open(root, durability="none") as j:
        seq = j.append(EventType.TAGS_CHANGED, {"v": 1, "add": ["x"]})
        with pytest.raises(CorruptPayload, match="it is not one"):
            j.dictionaries.get(seq)
        with pytest.raises(CorruptPayload, match="dictionary seq 99"):
            j.dictionaries.get(99)


def test_verify_reports_a_blob_whose_dictionary_is_not_in_the_journal(root: Path) -> None:
    d = sample_dictionary()  # seq 7: not a dictionary in this journal
    sid = UUID(int=5)
    payload = full_save_payload(
        meta_wire_of(sid), sid, [], ConversationContext(), (), SessionState()
    )
    payload["msgs"] = blob_of(msgpack.packb(["text " * 50], use_bin_type=True), d)
    with Journal.open(root, durability="none") as j:
        for _ in range(8):
            j.append(EventType.TAGS_CHANGED, {"v": 1, "add": ["x"]})
        j.append_many([Entry(EventType.SESSION_SAVED, payload, sid, compress=False)])
    report = verify(str(root))
    assert not report.intact
    assert any("seq 9 messages" in p.reason and "dictionary" in p.reason for p in report.problems)


# -- the trainer -------------------------------------------------------------------------------


def test_the_trainer_samples_only_saves_that_landed_in_the_segment_it_trains_for() -> None:
    t = Trainer(train_bytes=100)
    assert not t.offer(10, 5, b"s" * 16, b"x" * 60)  # seq 5 is in a sealed segment
    assert not t.offer(10, 11, b"s" * 16, b"x" * 60)
    assert not t.offer(20, 21, b"s" * 16, b"x" * 60)  # a new segment: samples start again
    assert t.offer(20, 22, b"t" * 16, b"x" * 60)
    assert not t.offer(20, 23, b"t" * 16, b"x" * 60)  # training already asked for


def test_a_training_that_fails_waits_for_twice_the_samples() -> None:
    t = Trainer(train_bytes=10)
    assert t.offer(1, 1, b"s" * 16, b"ab" * 5)
    assert t.train() is None  # zstd cannot train on one tiny sample
    assert not t.offer(1, 2, b"s" * 16, b"ab" * 4)  # 18 of the 20 bytes now wanted
    assert t.offer(1, 3, b"s" * 16, b"ab" * 2)


def test_a_dictionary_trained_for_a_segment_no_longer_active_is_not_installed() -> None:
    d = sample_dictionary()
    t = Trainer(train_bytes=10)
    assert t.offer(1, 1, b"s" * 16, b"x" * 20)
    t.offer(50, 51, b"s" * 16, b"y")  # the segment changed while training
    t.install(1, 40, d._zdict.as_bytes(), frozenset())
    assert t.current(50) is None and t.current(1) is None


# -- other writers, salvage --------------------------------------------------------------------


def test_a_second_writer_on_the_journal_uses_the_first_ones_dictionary(root: Path) -> None:
    first = fill(root)
    second = AgcxPeer("none")
    second.open(root)
    for op in MORE.iter_saves():
        second.save(op)
    j = second.store.journal
    [(rec, _)] = events(j, EventType.DICTIONARY_TRAINED)
    mine = [e for r, e in saves(j) if r.session in {UUID(s).bytes for s in MORE.session_ids}]
    assert mine and all(blob_dictionary(e) == rec.seq for e in mine)
    for sid in MORE.session_ids:
        assert first.load(sid) == MORE.messages_of(sid)
    second.close()
    first.close()


def test_salvage_skips_the_saves_whose_dictionary_was_lost_and_the_copy_verifies(
    root: Path, tmp_path: Path
) -> None:
    peer = fill(root)
    j = peer.store.journal
    [(rec, _)] = events(j, EventType.DICTIONARY_TRAINED)
    path = Path(j.segment_path(rec.segment))
    users = {r.seq for r, e in saves(j) if blob_dictionary(e) == rec.seq}
    peer.close()
    data = bytearray(path.read_bytes())
    data[rec.offset + 100] ^= 0xFF  # inside the dictionary: its CRC no longer matches
    path.write_bytes(bytes(data))
    report = salvage(root, tmp_path / "saved")
    lost = [s for s in report.skipped if f"dictionary seq {rec.seq}" in s.reason]
    assert len(lost) == len(users) > 0
    assert verify(str(tmp_path / "saved")).intact
    with SessionStore.open(tmp_path / "saved", readonly=True) as s:
        for m in s.list_sessions():
            s.load_session(m.id)


def test_a_torn_tail_that_takes_the_dictionary_takes_every_blob_that_needs_it(
    root: Path,
) -> None:
    peer = fill(root)
    j = peer.store.journal
    [(rec, _)] = events(j, EventType.DICTIONARY_TRAINED)
    path = Path(j.segment_path(rec.segment))
    peer.close()
    # Power lost in the middle of the dictionary's record: what follows it
    # was written later, so it is gone too (it never refers further back).
    with path.open("r+b") as f:
        f.truncate(rec.offset + 100)
    (root / "TAIL").unlink(missing_ok=True)
    with SessionStore.open(root, durability="none") as s:
        left = s.journal.last_seq
        assert left == rec.seq - 1
        assert all(blob_dictionary(e) is None for _, e in saves(s.journal))
        for m in s.list_sessions():
            s.load_session(m.id)
    assert verify(str(root)).intact


def test_the_audit_trail_names_a_dictionary_and_what_it_was_trained_on(root: Path) -> None:
    peer = fill(root)
    [entry] = [e for e in peer.store.history() if e.event == "DictionaryTrained"]
    assert entry.session_id is None
    assert entry.summary.startswith("compression dictionary of ")
    assert entry.summary.endswith(" sessions") and "trained on" in entry.summary
    peer.close()


# -- random histories ----------------------------------------------------------------------------


@settings(max_examples=40)
@given(ops=_ops, more=_ops, seg=st.sampled_from([4096, 8192]), victim=st.integers(0, 3))
def test_compaction_and_purge_of_random_histories_with_dictionaries_answer_as_before(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Any], more: list[Any], seg: int, victim: int
) -> None:
    root = tmp_path_factory.mktemp("dict") / "j"
    sids = [uuid4() for _ in range(4)]
    with SessionStore.open(root, segment_size=seg, max_chain=3, durability="flush") as s:
        s._trainer = QuickTrainer(train_bytes=128)
        h = History(s)
        for op in ops:
            _apply(h, sids, op[0], op[1], op[2])
        s.journal.seal_active()
        for op in more:
            _apply(h, sids, op[0], op[1], op[2])
        live = answers(s)
        s.compact(timedelta(0))
        assert answers(s) == live
        gone = sids[victim]
        if any(r.session == gone.bytes for r in s.journal.scan()):
            s.purge(gone)
            remaining = [e for r, e in events(s.journal, EventType.DICTIONARY_TRAINED)]
            assert all(gone.bytes not in read_dictionary_event(e)[1] for e in remaining)
            live = {k: v for k, v in live.items() if str(gone) not in k}
            live["list"] = [row for row in live["list"] if row[0] != gone]
            live["search"] = [x for x in live["search"] if x != gone]
            assert answers(s) == live
        _apply(h, sids, "save", (victim + 1) % 4, "after")
        live = answers(s)
    with SessionStore.open(root, segment_size=seg) as s:
        assert answers(s) == live
    assert verify(str(root)).intact
