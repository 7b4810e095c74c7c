"""The replay fold: every record decoded once, checked, and folded into the
projections; damage is reported with its place, never folded in.

The runner decodes the common record (a raw outer map of a known schema)
inline; these tests pin that every other case still gets the journal's own
checks and errors.
"""

from __future__ import annotations

import time
from pathlib import Path
from uuid import uuid4

import msgpack
import pytest
import zstandard

from journal import CorruptJournal, EventType, Journal, JournalError
from journal._codec import RAW
from journal._events import stored_raw_size
from journal._segment import Record
from projections import EventStatistics, ProjectionRunner, SessionContents, SessionIndex


def rebuild(root: Path) -> ProjectionRunner:
    with Journal.open(root, readonly=True) as j:
        runner = ProjectionRunner(j, [SessionIndex(), SessionContents(), EventStatistics()])
        runner.catch_up()
        return runner


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"v": 99, "add": ["x"]}, r"seq 1: .*schema version 99.*upgrade agcx"),
        ({"v": True, "add": ["x"]}, r"seq 1: .*schema version True"),
        ({"v": 0, "add": ["x"]}, r"seq 1: .*schema version 0"),
        ([1, 2], r"seq 1: .*not a map"),
    ],
)
def test_replay_refuses_a_payload_of_an_unknown_schema_or_shape_naming_its_seq(
    root: Path, payload: object, error: str
) -> None:
    with Journal.open(root, durability="none") as j:
        j.append(EventType.TAGS_CHANGED, payload, session_id=uuid4())
    with pytest.raises(JournalError, match=error):
        rebuild(root)


def test_replay_reports_a_payload_that_is_not_msgpack_with_its_segment_and_offset(
    root: Path,
) -> None:
    with Journal.open(root, durability="none") as j:
        bad = Record(1, time.time_ns(), EventType.TAGS_CHANGED, uuid4().bytes, RAW, b"\xc1", 0, 0)
        j.copy_records([bad])
    with pytest.raises(CorruptJournal, match=r"segments/.* at offset \d+: seq 1: "):
        rebuild(root)


def test_replay_folds_an_older_schema_version_like_the_current_one(root: Path) -> None:
    sid = uuid4()
    with Journal.open(root, durability="none") as j:
        j.append(EventType.LEGACY_IMPORTED, {"sha256": "ab", "kind": "session"}, session_id=sid)
        j.append(EventType.LEGACY_IMPORTED, {"v": 1, "sha256": "cd"}, session_id=sid)
    index = rebuild(root).projections[0]
    assert isinstance(index, SessionIndex) and index.imports == {"ab": 1, "cd": 2}


def _record(payload: dict[str, object]) -> tuple[Record, dict[str, object]]:
    data = msgpack.packb(payload, use_bin_type=True)
    return Record(1, 0, EventType.SESSION_SAVED, bytes(16), RAW, data, 0, 0), payload


def test_stored_raw_size_counts_each_nested_blob_at_its_declared_size() -> None:
    inner = b"x" * 5000
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(inner)
    rec, ev = _record({"msgs": frame, "conv": frame})
    assert stored_raw_size(rec, ev) == len(rec.payload) + 2 * (len(inner) - len(frame))
    rec, ev = _record({"msgs": b"\x91\x01"})  # a raw blob: counted as stored
    assert stored_raw_size(rec, ev) == len(rec.payload)


def test_stored_raw_size_counts_a_blob_without_a_declared_size_as_stored() -> None:
    damaged = b"\x28\xb5\x2f\xfd" + b"\xff" * 3
    rec, ev = _record({"msgs": damaged})
    assert stored_raw_size(rec, ev) == len(rec.payload)
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"y" * 1000)
    rec, ev = _record({"conv": unsized})
    assert stored_raw_size(rec, ev) == len(rec.payload)
