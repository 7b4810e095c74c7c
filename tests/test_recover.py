"""``journal.recover`` and ``journal.salvage``: new journals made from an existing one."""

from __future__ import annotations

import hashlib
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journal import (
    ConversationSnapshot,
    CorruptJournal,
    Entry,
    EventType,
    InputText,
    InvalidArgument,
    Journal,
    JournalError,
    Message,
    MessageSnapshot,
    Record,
    SalvageReport,
    SessionMetadata,
    SessionState,
    SessionStore,
    recover,
    salvage,
)
from journal._format import HEADER_SIZE, decode_manifest, encode_manifest, unpack_header
from journal._recover import Damage, scan_damaged

T0 = datetime(2024, 5, 1, tzinfo=UTC)

# -- helpers ------------------------------------------------------------------------------


def make_journal(root: Path, n: int = 120, batch: int = 1) -> list[Record]:
    """A journal of ``n`` small events over several sealed segments; its records.

    The records are checked against what the test wrote (seq as acknowledged,
    type, session, payload), so tests comparing copies with them compare with
    the test's own operations, not only with another read of the same code.
    """
    written: list[tuple[int, int, UUID, dict[str, object]]] = []
    with Journal.open(root, segment_size=4096, preallocate=0, durability="none") as j:
        for i in range(0, n, batch):
            entries = [
                Entry(
                    EventType.SESSION_TOUCHED,
                    {"v": 1, "i": k, "pad": "x" * (k % 50)},
                    UUID(int=k % 5 + 1),
                )
                for k in range(i, min(n, i + batch))
            ]
            seqs = j.append_many(entries)
            written += [
                (seq, e.event_type, e.session_id, e.payload)  # type: ignore[misc]
                for seq, e in zip(seqs, entries, strict=True)
            ]
        got = list(j.scan())
        assert [(r.seq, r.event_type, r.session_id, j.decode(r)) for r in got] == written
        return got


def key(r: Record) -> tuple[object, ...]:
    return (r.seq, r.ts_ns, r.event_type, r.session, r.codec, bytes(r.payload))


def records(root: Path) -> list[Record]:
    with Journal.open(root, readonly=True) as j:
        return list(j.scan())


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` and the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def segments(root: Path) -> list[Path]:
    return sorted((root / "segments").glob("*.agcx"))


def flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x10
    path.write_bytes(bytes(raw))


def offsets(root: Path, seg: Path) -> list[Record]:
    base = int(seg.name[:20])
    return [r for r in records(root) if r.segment == base]


def save(store: SessionStore, sid: UUID, n: int, title: str = "t") -> None:
    msgs = tuple(
        MessageSnapshot(
            item=Message(role="user", content=(InputText(f"message {i} " * 20),)),
            timestamp=T0 + timedelta(seconds=i),
            turn_index=i,
        )
        for i in range(n)
    )
    meta = SessionMetadata(id=sid, title=title, created_at=T0, updated_at=T0, last_accessed=T0)
    store.save_session(sid, meta, ConversationSnapshot(sid, msgs), SessionState())


# -- recover ------------------------------------------------------------------------------


def test_recover_copies_exactly_the_records_up_to_the_point(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = make_journal(src)
    before = tree(src)
    calls: list[tuple[int, int]] = []
    report = recover(
        src, tmp_path / "out", at=57, batch_bytes=500, progress=lambda d, t: calls.append((d, t))
    )
    assert (report.seq, report.records, report.first_seq, report.last_seq) == (57, 57, 1, 57)
    assert report.target == str(tmp_path / "out")
    assert report.to_json()["records"] == 57
    copied = records(tmp_path / "out")
    assert [key(r) for r in copied] == [key(r) for r in original[:57]]
    assert len(calls) > 2 and calls[-1][0] == calls[-1][1]
    assert tree(src) == before  # the source is only read
    # An independent journal: its own id, and it carries on from seq 58.
    with Journal.open(tmp_path / "out") as j, Journal.open(src, readonly=True) as s:
        assert j.journal_id != s.journal_id
        assert j.append(EventType.SESSION_TOUCHED, {"v": 1}) == 58
    assert tree(src) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_recover_at_a_time_keeps_the_events_stamped_at_or_before_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = make_journal(src, n=30)
    pick = original[11]
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=-(-pick.ts_ns // 1000))
    expected = max(r.seq for r in original if r.ts_ns <= -(-pick.ts_ns // 1000) * 1000)
    report = recover(src, tmp_path / "out", at=when)
    assert report.seq == expected
    assert [r.seq for r in records(tmp_path / "out")] == list(range(1, expected + 1))


def test_recover_of_a_store_is_a_working_store(tmp_path: Path) -> None:
    src = tmp_path / "src"
    a, b = UUID(int=10), UUID(int=20)
    with SessionStore.open(src, durability="none", segment_size=4096) as store:
        save(store, a, 3)
        store.tag(a, "bug")
        save(store, b, 2)
        point = store.journal.last_seq
        store.delete_session(b)
        save(store, a, 5)
        expected = [(m.id, m.tags, m.message_count) for m in store.at(point).list_sessions()]
    recover(src, tmp_path / "out", at=point)
    with SessionStore.open(tmp_path / "out", durability="none") as rec:
        assert [(m.id, m.tags, m.message_count) for m in rec.list_sessions()] == expected
        save(rec, b, 4, title="carried on")
        assert rec.get_metadata(b).title == "carried on"


def test_recover_refuses_targets_it_could_damage(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_journal(src, n=5)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    cases = [
        (full, "not empty"),
        (a_file, "not a directory"),
        (link, "symlink"),
        (src, "inside the source"),
        (src / "sub", "inside the source"),
        (tmp_path / "no" / "such" / "parent", "does not exist"),
    ]
    for target, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            recover(src, target, at=3)
    assert (full / "keep.txt").read_text() == "mine"
    assert not (src / "sub").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert recover(src, empty, at=3).records == 3
    with pytest.raises(JournalError, match="not a directory"):
        recover(tmp_path / "missing", tmp_path / "out2", at=1)


def test_a_failed_recover_leaves_no_target(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = make_journal(src)
    seg = segments(src)[0]
    victim = offsets(src, seg)[5]
    flip(seg, victim.offset + 20)
    with pytest.raises(CorruptJournal) as err:
        recover(src, tmp_path / "out", at=original[-1].seq)
    assert err.value.path.endswith(seg.name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_recover_copies_the_sealed_segments_before_the_point_as_bytes(tmp_path: Path) -> None:
    from tools._verify import verify

    src = tmp_path / "src"
    original = make_journal(src, n=400)
    with Journal.open(src, readonly=True) as s:
        sealed = [i for i in s.manifest.segments if i.sealed]
        cut = sealed[2].last_seq + 3  # inside the fourth segment
    report = recover(src, tmp_path / "out", at=cut)
    assert (report.records, report.last_seq) == (cut, cut)
    assert report.bytes == sum(r.size for r in original[:cut])
    assert [key(r) for r in records(tmp_path / "out")] == [key(r) for r in original[:cut]]
    with Journal.open(tmp_path / "out", readonly=True) as j:
        out_jid = j.journal_id
        listed = j.manifest.segments
    for info in sealed[:3]:  # the same records, byte for byte, under the new journal's header
        mine = (tmp_path / "out" / "segments" / info.name).read_bytes()
        theirs = (src / "segments" / info.name).read_bytes()[: info.length]
        assert mine[HEADER_SIZE:] == theirs[HEADER_SIZE:]
        assert mine[:HEADER_SIZE] != theirs[:HEADER_SIZE]
        assert unpack_header(mine[:HEADER_SIZE], info.name).journal_id == out_jid
    assert [i.base_seq for i in listed[:3]] == [i.base_seq for i in sealed[:3]]
    assert verify(str(tmp_path / "out")).intact


def test_a_recovered_compacted_journal_takes_its_own_compactions(tmp_path: Path) -> None:
    from tools._verify import verify

    src = tmp_path / "src"
    sids = [UUID(int=i + 1) for i in range(3)]
    with SessionStore.open(src, durability="none", segment_size=4096) as store:
        for k in range(30):
            save(store, sids[k % 3], k // 3 + 1)
        store.compact(retain=timedelta(0))
        for k in range(6):
            save(store, sids[k % 3], 20)
        store.journal.seal_active()
        last = store.journal.last_seq
        assert any(i.file for i in store.journal.manifest.segments)  # rewritten segments
    recover(src, tmp_path / "out", at=last)
    with SessionStore.open(tmp_path / "out", durability="none") as out:
        assert not any(i.file for i in out.journal.manifest.segments)
        for k in range(6):
            save(out, sids[k % 3], 25)
        out.compact(retain=timedelta(0))
        assert [len(out.load_session(s)[1].messages) for s in sids] == [25, 25, 25]
    assert verify(str(tmp_path / "out")).intact


def test_recover_stops_at_a_damaged_sealed_segment_after_whole_ones(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = make_journal(src, n=400)
    seg = segments(src)[2]
    flip(seg, offsets(src, seg)[1].offset + 20)
    with pytest.raises(CorruptJournal) as err:
        recover(src, tmp_path / "out", at=original[-1].seq)
    assert err.value.path.endswith(seg.name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


# -- salvage ------------------------------------------------------------------------------


def test_salvage_of_an_intact_journal_copies_every_record(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = make_journal(src)
    before = tree(src)
    report = salvage(src, tmp_path / "out")
    assert isinstance(report, SalvageReport)
    assert report.intact and report.skipped == () and report.problems == ()
    assert report.records == len(original) and report.segments_read == len(segments(src))
    assert [key(r) for r in records(tmp_path / "out")] == [key(r) for r in original]
    assert tree(src) == before
    assert report.to_json()["intact"] is True


def test_salvage_skips_a_damaged_record_and_names_where(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = make_journal(src)
    seg = segments(src)[1]
    victim = offsets(src, seg)[3]
    flip(seg, victim.offset + 30)
    before = tree(src)
    report = salvage(src, tmp_path / "out")
    assert not report.intact
    [skip] = report.skipped
    assert skip.segment == seg.name
    assert skip.start == victim.offset and skip.end == victim.offset + victim.size
    assert skip.bytes == victim.size and "checksum" in skip.reason
    copied = [key(r) for r in records(tmp_path / "out")]
    assert copied == [key(r) for r in original if r.seq != victim.seq]
    assert tree(src) == before


def test_salvage_copes_with_truncated_missing_and_foreign_segments(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = make_journal(src, n=200)
    segs = segments(src)
    assert len(segs) >= 5
    cut = offsets(src, segs[0])[-2]
    lost = {r.seq for r in offsets(src, segs[2])}
    # Truncated in the middle of a record.
    with open(segs[0], "r+b") as f:
        f.truncate(cut.offset + 10)
    # Missing.
    segs[2].unlink()
    # From another journal, under this journal's name.
    other = tmp_path / "other"
    make_journal(other, n=200)
    segs[3].write_bytes(segments(other)[3].read_bytes())
    foreign = {r.seq for r in records(other) if r.segment == int(segs[3].name[:20])}
    report = salvage(src, tmp_path / "out")
    reasons = {s.segment: s.reason for s in report.skipped}
    assert "body" in reasons[segs[0].name] or "past the end" in reasons[segs[0].name]
    assert "missing" in reasons[segs[2].name]
    assert "another journal" in reasons[segs[3].name]
    first_lost = {r.seq for r in original if r.segment == int(segs[0].name[:20])}
    first_lost = {s for s in first_lost if s >= cut.seq}
    expected = [key(r) for r in original if r.seq not in lost | foreign | first_lost]
    assert [key(r) for r in records(tmp_path / "out")] == expected


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_salvage_without_a_usable_manifest_uses_the_segment_files(
    tmp_path: Path, damage: str
) -> None:
    src = tmp_path / "src"
    original = make_journal(src)
    if damage == "missing":
        (src / "MANIFEST").unlink()
    else:
        flip(src / "MANIFEST", 20)
    report = salvage(src, tmp_path / "out")
    assert any("MANIFEST" in p for p in report.problems)
    assert report.skipped == ()
    assert [key(r) for r in records(tmp_path / "out")] == [key(r) for r in original]


def test_salvage_reads_the_records_of_a_segment_whose_header_is_damaged(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = make_journal(src)
    flip(segments(src)[1], 50)  # reserved bytes: the header checksum no longer matches
    report = salvage(src, tmp_path / "out")
    assert any("header" in p for p in report.problems)
    assert [key(r) for r in records(tmp_path / "out")] == [key(r) for r in original]


def test_salvage_skips_a_torn_tail_and_undecodable_payloads(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with Journal.open(src, durability="none") as j:
        j.append(EventType.SESSION_TOUCHED, {"v": 1, "i": 0})
        bad = j.append(EventType.SESSION_TOUCHED, [1, 2, 3])  # not an event map
        j.append(EventType.SESSION_TOUCHED, {"v": 1, "i": 2})
        end = j.statistics().bytes
    with open(segments(src)[0], "r+b") as f:
        f.seek(end)
        f.write(b"\x55" * 30)  # a torn tail: garbage after the last record
    report = salvage(src, tmp_path / "out")
    reasons = [s.reason for s in report.skipped]
    assert any(f"seq {bad}" in r for r in reasons)
    assert any(s.start == end and s.bytes == 30 for s in report.skipped)
    assert [r.seq for r in records(tmp_path / "out")] == [1, 3]
    with SessionStore.open(tmp_path / "out", durability="none") as store:
        assert store.list_sessions() == []


def test_a_salvaged_store_opens_and_keeps_the_undamaged_sessions(tmp_path: Path) -> None:
    src = tmp_path / "src"
    ids = [UUID(int=100 + i) for i in range(6)]
    with SessionStore.open(src, durability="none", segment_size=4096) as store:
        for sid in ids:
            save(store, sid, 4, title=f"s{sid.int}")
    first = segments(src)[0]
    victim = offsets(src, first)[0]
    flip(first, victim.offset + 40)
    report = salvage(src, tmp_path / "out")
    assert len(report.skipped) == 1
    with SessionStore.open(tmp_path / "out", durability="none") as store:
        alive = {m.id for m in store.list_sessions()}
        assert alive == set(ids) - {victim.session_id}
        for sid in alive:
            assert len(store.load_session(sid)[1].messages) == 4


@settings(max_examples=30)
@given(data=st.data())
def test_salvage_never_invents_a_record_and_keeps_every_untouched_one(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    src = tmp / "src"
    original = make_journal(src, n=80)
    segs = segments(src)
    touched: dict[str, list[tuple[int, int]]] = {}
    for _ in range(data.draw(st.integers(1, 4), label="damages")):
        seg = data.draw(st.sampled_from(segs), label="segment")
        raw = bytearray(seg.read_bytes())
        if len(raw) <= HEADER_SIZE:
            continue
        start = data.draw(st.integers(HEADER_SIZE, len(raw) - 1), label="start")
        length = data.draw(st.integers(1, 64), label="length")
        kind = data.draw(st.sampled_from(["flip", "zero", "random"]), label="kind")
        end = min(len(raw), start + length)
        rng = random.Random(start)
        for i in range(start, end):
            raw[i] = (
                0
                if kind == "zero"
                else raw[i] ^ (1 << rng.randrange(8))
                if kind == "flip"
                else rng.randrange(256)
            )
        seg.write_bytes(bytes(raw))
        touched.setdefault(seg.name, []).append((start, end))
    report = salvage(src, tmp / "out")
    by_seq = {r.seq: key(r) for r in original}
    copied = records(tmp / "out")
    for r in copied:
        assert key(r) == by_seq[r.seq]  # nothing invented, nothing altered
    kept = {r.seq for r in copied}
    for r in original:
        name = f"{r.segment:020d}.agcx"
        hit = any(a < r.offset + r.size and r.offset < b for a, b in touched.get(name, []))
        if not hit:
            assert r.seq in kept, f"untouched seq {r.seq} was not copied"
    assert report.records == len(copied)


def test_the_damage_tolerant_scan_resynchronises_after_zeros(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_journal(src, n=40)
    seg = segments(src)[0]
    recs = offsets(src, seg)
    raw = bytearray(seg.read_bytes())
    a, b = recs[2].offset, recs[4].offset
    raw[a:b] = bytes(b - a)
    items = list(scan_damaged(bytes(raw), HEADER_SIZE, 1 << 20, 0, 0))
    damages = [i for i in items if isinstance(i, Damage)]
    assert [(d.start, d.end) for d in damages] == [(a, b)]
    seqs = [i[2] for i in items if not isinstance(i, Damage)]
    assert seqs == [r.seq for r in recs if not a <= r.offset < b]
    # Zeros after the last record are the end of the data, not damage.
    clean = seg.read_bytes() + bytes(1000)
    assert not [i for i in scan_damaged(clean, HEADER_SIZE, 1 << 20, 0, 0) if isinstance(i, Damage)]


def test_salvage_refuses_what_is_not_a_journal(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(JournalError, match="nothing to salvage"):
        salvage(tmp_path / "empty", tmp_path / "out")
    src = tmp_path / "src"
    make_journal(src, n=3)
    with pytest.raises(InvalidArgument, match="inside the source"):
        salvage(src, src / "segments")


def test_manifest_helpers_round_trip_for_fault_injection(tmp_path: Path) -> None:
    # The CLI tests edit manifests this way; make sure it is a faithful round trip.
    src = tmp_path / "src"
    make_journal(src, n=50)
    data = (src / "MANIFEST").read_bytes()
    assert encode_manifest(decode_manifest(data, "MANIFEST")) == data
    assert os.stat(src / "MANIFEST").st_size == len(data)
