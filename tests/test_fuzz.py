"""Hostile input: damaged, random and absurd bytes given to open, scan and decode.

Whatever the bytes, the journal answers with a typed error (a
:class:`journal.JournalError` subclass) or with the records that are really
there, never an unexpected exception, a hang or an allocation its limits do
not allow. The long-running modes run with ``--run-slow``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import journal._segment as segment_module
from journal import Entry, Journal

# -- record layouts at the edges of read chunks ------------------------------------------


@settings(max_examples=60)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=40),
    chunk=st.integers(min_value=64, max_value=700),
    first=st.integers(min_value=8, max_value=700),
)
def test_every_record_is_found_wherever_the_read_chunks_end(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], chunk: int, first: int
) -> None:
    """A chunk ending on a record boundary (or inside a frame header) is not the end of data."""
    root = tmp_path_factory.mktemp("chunks") / "j"
    payloads = [bytes([1 + i % 250]) * n for i, n in enumerate(sizes)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(segment_module, "_CHUNK", chunk)
        mp.setattr(segment_module, "_FIRST_CHUNK", first)
        with Journal.open(root, compression_level=1) as j:
            half = len(payloads) // 2
            j.append_many([Entry(1, p) for p in payloads[:half]])
            with Journal.open(root, readonly=True) as reader:
                assert reader.last_seq == half
                # An incremental catch-up from the middle, then a full scan.
                j.append_many([Entry(1, p) for p in payloads[half:]])
                assert reader.last_seq == len(payloads)
                assert [reader.decode(r) for r in reader.scan()] == payloads
        with Journal.open(root) as j:
            assert [j.decode(r) for r in j.scan()] == payloads
            assert j.append(1, b"next") == len(payloads) + 1
        with Journal.open(root, readonly=True) as j:
            assert [j.decode(r) for r in j.scan()] == [*payloads, b"next"]


def test_a_record_ending_exactly_where_the_first_read_chunk_ends_is_not_the_end(
    root: Path,
) -> None:
    """Regression: 16 records of 1 KiB end exactly at the 16 KiB first chunk."""
    body = os.urandom(1024 - 44 - 3)  # 44 bytes of framing, 3 of msgpack bin16 header
    with Journal.open(root, compression_level=1) as j:
        j.append_many([Entry(1, body) for _ in range(21)])
    with Journal.open(root) as j:
        assert len(list(j.scan())) == 21
        assert j.append(1, b"x") == 22
    with Journal.open(root, readonly=True) as j:
        assert [r.seq for r in j.scan()] == list(range(1, 23))
