"""Thousands of segments under a small descriptor limit (``ulimit -n 64``).

A journal of 5,000 segments is written, read (open, scan, reads by seq,
every session loaded), written again, compacted and verified in a child
process whose RLIMIT_NOFILE is 64: segment files are held in a bounded cache
(journal/_segment.py ``SegmentFiles``), not one descriptor each.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from journal import Journal, JournalError
from journal._fs import OS
from journal._segment import Segment, SegmentFiles
from tests.conftest import PYTHON, ROOT, child_env
from tests.faultfs import report_figures

WORKER = ROOT / "tests" / "_many_segments_worker.py"


@pytest.mark.timeout(300)
def test_5000_segments_are_written_read_compacted_and_verified_under_ulimit_64(
    tmp_path: Path,
) -> None:
    out = subprocess.run(
        [PYTHON, str(WORKER), str(tmp_path / "j"), "5000", "64"],
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    report_figures("5000 segments under ulimit -n 64", figures)
    assert figures["segments_written"] == 5000
    assert figures["peak_open_fds"] < 64
    assert figures["segments_after_compaction"] < figures["segments_before_compaction"]


def test_the_segment_cache_closes_the_least_recently_used_file_not_in_use(
    tmp_path: Path,
) -> None:
    with Journal.open(tmp_path / "j", segment_size=4096) as j:
        for _ in range(30):
            j.append(1, os.urandom(1000))
        infos = [i for i in j.manifest.segments if i.sealed]
    assert len(infos) >= 6
    files = SegmentFiles(limit=3)
    segs = [
        Segment(OS, str(tmp_path / "j" / "segments" / i.name), i.base_seq, writable=False,
                files=files)
        for i in infos
    ]
    with segs[0].pinned() as first:
        for s in segs[1:]:
            with s.pinned() as fd:
                assert fd >= 0
            assert files.open_count <= 3
        assert segs[0]._file.fd == first, "a file in use was closed"
    for s, info in zip(segs, infos, strict=True):  # reopened as needed, read whole
        s.read_header(None)
        assert s.scan_forward(info.length, 1 << 20).kind == "end"
        assert (s.count, s.last_seq) == (info.count, info.last_seq)
        assert files.open_count <= 3
    seg = segs[1]
    files.drop(seg._file)
    (tmp_path / "j" / "segments" / infos[1].name).rename(tmp_path / "moved")
    (tmp_path / "j" / "segments" / infos[1].name).write_bytes(b"a different file")
    with pytest.raises(JournalError, match="was replaced"), seg.pinned():
        pass
