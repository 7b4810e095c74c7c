"""A child for tests/test_many_segments.py: a journal of thousands of segments
written, read, compacted and verified with a small descriptor limit.

``python tests/_many_segments_worker.py ROOT SEGMENTS NOFILE`` sets
RLIMIT_NOFILE to NOFILE first, then prints one JSON line of figures.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path
from uuid import UUID


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main() -> None:
    root, n, nofile = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    # Imported after the limit is set: the segment cache sizes itself from it.
    import journal._segment as segment_module
    from journal import SessionStore
    from journal._rewrite import remove_segment_files, switch_segments, write_segment_files
    from tests.test_compact import History
    from tools._verify import verify

    started = time.monotonic()
    peak = 0
    sessions = [UUID(int=k + 1) for k in range(8)]
    # Written: n events, then split into one segment each (one manifest switch,
    # instead of n rolls each rewriting a manifest of thousands of entries).
    with SessionStore.open(root, durability="none", segment_size=1 << 20) as s:
        h = History(s)
        for k in range(n):
            sid = sessions[k % len(sessions)]
            if k < len(sessions) or k % 50 == 0:
                h.save(sid, [f"turn {k} " * 5])
            else:
                s.rename(sid, f"title {k}")
        j = s.journal
        j.seal_active()
        old = [i for i in j.manifest.segments if i.sealed]
        recs = [r for i in old for r in j.scan(from_seq=i.base_seq, until_seq=i.last_seq)]
        new = write_segment_files(
            j, recs, generation=j.manifest.generation + 1, first_base=1, max_size=1
        )
        switch_segments(j, old, new)
        remove_segment_files(j, old)
        expected = {sid: s.load_session(sid) for sid in sessions}
        titles = {m.id: m.title for m in s.list_sessions()}
    segments_written = len(new)
    peak = max(peak, open_fds())
    # Read: open (every segment listed), scan, read by seq, load every session.
    with SessionStore.open(root, segment_size=4096) as s:
        h.store = s
        j = s.journal
        seqs = [r.seq for r in j.scan()]
        assert seqs == list(range(1, len(seqs) + 1)), "seqs not contiguous"
        peak = max(peak, open_fds())
        picked = seqs[::7]
        assert [r.seq for r in j.read_many(picked)] == picked
        for seq in seqs[::97]:
            assert j.read(seq).seq == seq
        for sid in sessions:
            assert s.load_session(sid) == expected[sid]
        assert {m.id: m.title for m in s.list_sessions()} == titles
        peak = max(peak, open_fds())
        # Written again: more saves, rolling 4 KiB segments.
        for k in range(40):
            h.save(sessions[k % 3], [f"turn {n + k} " * 5])
        # (The stored sizes in the metadata change with compaction; the rest may not.)
        expected = {sid: s.load_session(sid)[1:] for sid in sessions}
        segments_before = j.statistics().segments
        # Compacted: every segment read and rewritten.
        report = s.compact(timedelta(0))
        assert {sid: s.load_session(sid)[1:] for sid in sessions} == expected
        segments_after = j.statistics().segments
        peak = max(peak, open_fds())
    # Verified: every byte checked.
    v = verify(str(root))
    assert v.intact, v.problems[:3]
    peak = max(peak, open_fds())
    print(json.dumps({
        "segments_written": segments_written,
        "segments_before_compaction": segments_before,
        "segments_after_compaction": segments_after,
        "compaction_seconds": round(report.seconds, 2) if hasattr(report, "seconds") else None,
        "nofile": nofile,
        "segment_cache": segment_module.FILES.limit,
        "peak_open_fds": peak,
        "seconds": round(time.monotonic() - started, 2),
    }))


if __name__ == "__main__":
    main()
