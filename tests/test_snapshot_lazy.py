"""Projection snapshots restored lazily: open unpacks no session, each one is
decoded when first read, and every answer is the one a full replay gives.

Also: snapshots of an older layout are ignored and rebuilt, and a session
entry that does not decode (only a bug could write one: the snap's checksum
covers it) raises a typed error naming the snap, never a wrong answer.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgpack
import pytest
import zstandard

from journal import CorruptJournal, Journal, SessionStore
from projections import EventStatistics, ProjectionRunner, SessionContents, SessionIndex
from projections._base import PackedEntries, pack_entries
from tests._store_worker import conversation, metadata
from tools._replay import replay

from .test_store import answers, state

_HEADER = struct.Struct("<4sHHII")


def build(root: Path, n: int = 12) -> list[UUID]:
    """A store with sessions edited in every way an event can, then closed (snaps written)."""
    with SessionStore.open(root, durability="none") as s:
        ids = [uuid4() for _ in range(n)]
        for i, sid in enumerate(ids):
            keys = [f"{sid}/{k}" for k in range(3)]
            s.save_session(sid, metadata(sid, f"session {i}"), conversation(sid, keys), state(i))
        for i, sid in enumerate(ids[: n // 2]):  # a delta save each
            keys = [f"{sid}/{k}" for k in range(5)]
            s.save_session(sid, metadata(sid, f"session {i}"), conversation(sid, keys), state(i))
        s.tag(ids[0], "red", "blue")
        s.untag(ids[0], "red")
        s.set_favorite(ids[1], True)
        s.rename(ids[2], "renamed")
        s.touch(ids[3])
        s.create_checkpoint(ids[4], uuid4(), conversation(uuid4(), ["c1"]), state(40))
        s.create_checkpoint(ids[4], uuid4(), conversation(uuid4(), ["c2"]), state(41))
        s.delete_session(ids[-1])
    return ids[:-1]


def replayed(root: Path) -> tuple[object, ...]:
    with SessionStore.open(root, readonly=True, snapshots=False) as ref:
        return answers(ref)


def still_packed(entries: dict[bytes, Any]) -> set[bytes]:
    return {k for k, v in dict.items(entries) if type(v) is bytes}


def write_snap(root: Path, name: str, snap: dict[str, Any], *, version: int = 2) -> None:
    body = msgpack.packb(snap, use_bin_type=True)
    if version == 1:
        body = zstandard.ZstdCompressor(write_content_size=True).compress(body)
    head = _HEADER.pack(b"AGCP", version, 0, len(body), zlib.crc32(body))
    (root / "projections" / f"{name}.snap").write_bytes(head + body)


def read_snap(root: Path, name: str) -> dict[str, Any]:
    data = (root / "projections" / f"{name}.snap").read_bytes()
    snap: dict[str, Any] = msgpack.unpackb(data[_HEADER.size :], strict_map_key=False)
    return snap


# -- lazy restore ---------------------------------------------------------------------------


def test_open_unpacks_no_session_and_a_read_decodes_only_that_session(root: Path) -> None:
    ids = build(root)
    with SessionStore.open(root, readonly=True) as s:
        assert s._runner.restored_from_snapshot
        assert s._index._packed is not None and s._contents._packed is not None
        s.get_metadata(ids[2])
        sessions, chains = s._index.sessions, s._contents.chains
        assert isinstance(sessions, PackedEntries) and isinstance(chains, PackedEntries)
        assert still_packed(sessions) == {i.bytes for i in ids} - {ids[2].bytes}
        assert still_packed(chains) == {i.bytes for i in ids} - {ids[2].bytes}
        assert s.session_exists(ids[5]) and ids[5].bytes in still_packed(sessions)
        s.list_sessions()
        assert not still_packed(sessions) and not still_packed(chains)
        # Once all are decoded the maps are plain dicts again (C-speed reads).
        assert type(s._index.sessions) is dict and type(s._contents.chains) is dict


def test_a_lazily_restored_store_answers_exactly_like_a_replayed_one(root: Path) -> None:
    ids = build(root)
    want = replayed(root)
    with SessionStore.open(root, readonly=True, snapshots=False) as ref:
        one, loaded = ref.get_metadata(ids[0]), ref.load_session(ids[4])
    with SessionStore.open(root, readonly=True) as s:
        # One at a time first (a mix of decoded and packed entries), then everything.
        assert s.get_metadata(ids[0]) == one
        assert s.load_session(ids[4]) == loaded
        assert answers(s) == want


def test_events_after_a_lazy_restore_fold_into_packed_entries_like_a_replay(root: Path) -> None:
    ids = build(root)
    with SessionStore.open(root, durability="none") as s:
        assert s._runner.restored_from_snapshot
        # Each of these edits a session whose entry was never decoded.
        s.tag(ids[5], "green")
        s.rename(ids[6], "again")
        s.set_favorite(ids[7], True)
        s.touch(ids[8])
        s.create_checkpoint(ids[9], uuid4(), conversation(uuid4(), ["c3"]), state(50))
        s.delete_session(ids[10])
        keys = [f"{ids[3]}/{k}" for k in range(4)]
        s.save_session(ids[3], metadata(ids[3], "session 3"), conversation(ids[3], keys), state(3))
        assert still_packed(s._index.sessions)  # the rest were left packed
        # close() writes snaps holding both decoded and still-packed entries.
    with SessionStore.open(root, readonly=True) as s:
        assert s._runner.restored_from_snapshot and s._runner.replayed == 0
        assert answers(s) == replayed(root)


def test_catching_up_a_lazy_restore_from_another_writer_answers_like_a_replay(
    root: Path,
) -> None:
    ids = build(root)
    with SessionStore.open(root, readonly=True) as reader:
        with SessionStore.open(root, durability="none") as writer:
            writer.tag(ids[1], "from the writer")
            writer.delete_session(ids[2])
        assert answers(reader) == replayed(root)


def test_snaps_left_untouched_since_the_restore_are_written_back_unchanged(root: Path) -> None:
    build(root)
    before = read_snap(root, "index")
    with SessionStore.open(root, durability="none") as s:
        s._runner.forget_persisted()  # make close() write the snaps again
    after = read_snap(root, "index")
    assert after["state"]["s"] == before["state"]["s"]


def test_agcx_replay_finds_no_difference_with_a_partly_decoded_snapshot(root: Path) -> None:
    ids = build(root)
    with SessionStore.open(root, durability="none") as s:
        s.get_metadata(ids[0])
        s.tag(ids[1], "x")
    with Journal.open(root, readonly=True) as j:
        report = replay(j, j.last_seq)
    assert report.snapshot_seq == report.seq and report.ok, report.mismatches


def test_packed_entries_decode_on_every_read_but_not_on_membership_or_length() -> None:
    packed = {bytes([i]) * 16: msgpack.packb({"n": i}) for i in range(4)}
    decoded: list[bytes] = []

    def decode(k: bytes, v: bytes) -> dict[str, int]:
        decoded.append(k)
        out: dict[str, int] = msgpack.unpackb(v)
        return out

    e = PackedEntries(packed, decode, "x.snap")
    a, b, c, d = sorted(packed)
    assert a in e and len(e) == 4 and sorted(e) == sorted(packed) and not decoded
    assert e[a] == {"n": 0} and e.get(b) == {"n": 1} and e.pop(c) == {"n": 2}
    assert e.get(c) is None and c not in e
    assert e[a] is e[a] and decoded == [a, b, c]  # decoded once, kept
    assert list(e.values()) == [{"n": 0}, {"n": 1}, {"n": 3}] and decoded == [a, b, c, d]
    assert e == {a: {"n": 0}, b: {"n": 1}, d: {"n": 3}}


# -- old layouts and damage ------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["version 1 header", "old projection versions"])
def test_a_snapshot_of_an_older_layout_is_ignored_and_rebuilt(root: Path, layout: str) -> None:
    build(root)
    want = replayed(root)
    # The old layout: each projection's whole state in one map (no packed entries).
    with Journal.open(root, readonly=True) as j:
        ps = [SessionIndex(), SessionContents(), EventStatistics()]
        runner = ProjectionRunner(j, ps)
        runner.catch_up()
        jid, seq, ts, hs = j.journal_id, runner.seq, runner.ts_ns, j.manifest.horizon_seq
    for p in ps:
        snap = {"jid": jid, "pv": 1, "seq": seq, "ts": ts, "hs": hs, "state": p.plain_state()}
        write_snap(root, p.name, snap, version=1 if layout == "version 1 header" else 2)
    with SessionStore.open(root, durability="none") as s:
        assert not s._runner.restored_from_snapshot
        assert answers(s) == want
    with SessionStore.open(root, readonly=True) as s:  # close() wrote current snaps
        assert s._runner.restored_from_snapshot
        assert answers(s) == want


def damage_one_entry(root: Path, sid: UUID, entry: bytes) -> None:
    """Rewrite index.snap, checksum and all, with one session's entry replaced."""
    snap = read_snap(root, "index")
    entries = msgpack.unpackb(zstandard.decompress(snap["state"]["s"]))
    entries[sid.bytes] = entry
    snap["state"]["s"] = pack_entries(entries, lambda v: v)
    write_snap(root, "index", snap)


@pytest.mark.parametrize(
    "entry", [b"\xc1", b"\x93\x01", msgpack.packb([1, 2]), msgpack.packb({"a": 1}) + b"\x00"]
)
def test_a_session_entry_that_does_not_decode_raises_a_typed_error_naming_the_snap(
    root: Path, entry: bytes
) -> None:
    ids = build(root)
    damage_one_entry(root, ids[3], entry)
    with SessionStore.open(root, readonly=True) as s:
        assert s._runner.restored_from_snapshot  # the checksum passed
        assert s.get_metadata(ids[4]).id == ids[4]  # the other sessions still answer
        with pytest.raises(CorruptJournal, match=r"index\.snap.*" + ids[3].hex):
            s.get_metadata(ids[3])
        with pytest.raises(CorruptJournal, match=r"index\.snap"):
            s.list_sessions()
    # Deleting the snap, as the error says, rebuilds it from the log.
    (root / "projections" / "index.snap").unlink()
    with SessionStore.open(root, durability="none") as s:
        assert answers(s) == replayed(root)


def test_a_session_map_that_does_not_decode_raises_a_typed_error_naming_the_snap(
    root: Path,
) -> None:
    build(root)
    snap = read_snap(root, "contents")
    snap["state"]["c"] = zstandard.ZstdCompressor(write_content_size=True).compress(
        msgpack.packb({b"short id": b""})
    )
    write_snap(root, "contents", snap)
    with (
        SessionStore.open(root, readonly=True) as s,
        pytest.raises(CorruptJournal, match=r"contents\.snap"),
    ):
        s.list_sessions()
