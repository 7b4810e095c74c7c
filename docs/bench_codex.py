"""Codex import bench: import speed, re-import cost, journal size against the rollouts.

Run from the repository root::

    python3 docs/bench_codex.py [--rollouts 200] [--turns 40] [--runs 3]

It writes a synthetic ``$CODEX_HOME`` of ``--rollouts`` rollouts (tests/codex_rollouts.py:
turns of user message, reasoning, tool call, tool output, answer, events, and every
fourth turn a ``compacted`` line whose ``replacement_history`` repeats the conversation
so far, as Codex's compaction does), then per run imports it into a fresh journal twice
and prints medians:

* import MB/s of rollout JSON (target >= 50 MB/s);
* the second import's time as a share of the first's (target <= 2%);
* the journal's size against the rollouts' bytes (target <= 0.10x) and against the
  same rollouts compressed file by file with zstd level 3 (target <= 0.5x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from journal import SessionStore
from tests import codex_rollouts as cx


def journal_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.seg"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rollouts", type=int, default=200)
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="agcx-bench-codex-"))
    try:
        home = base / "codex"
        raw = zst = 0
        z = zstandard.ZstdCompressor(level=3)
        for i in range(args.rollouts):
            sid = cx.new_id()
            data = cx.encode(cx.conversation(sid, args.turns, seed=i, compact_every=4))
            cx.write_rollout(home, sid, data, day=f"2025/10/{1 + i % 28:02d}")
            raw += len(data)
            zst += len(z.compress(data))
        first, second, sizes = [], [], []
        for run in range(args.runs):
            root = base / f"j{run}"
            with SessionStore.open(root, snapshots=False) as s:
                t = time.perf_counter()
                r1 = s.import_codex(home)
                first.append(time.perf_counter() - t)
                t = time.perf_counter()
                r2 = s.import_codex(home)
                second.append(time.perf_counter() - t)
                assert r1.sessions_imported == args.rollouts and not r1.problems
                assert r2.already_imported == args.rollouts
            sizes.append(sum(p.stat().st_size for p in root.rglob("*") if p.is_file()
                             and "projections" not in p.parts))
            shutil.rmtree(root)
        t1, t2, size = (statistics.median(x) for x in (first, second, sizes))
        print(f"rollouts           {args.rollouts} x {args.turns} turns, {raw / 1e6:.1f} MB JSON, "
              f"{zst / 1e6:.2f} MB as zstd -3 per file")
        print(f"import             {t1:.2f} s median of {args.runs}: {raw / 1e6 / t1:.1f} MB/s "
              "(target >= 50)")
        print(f"second import      {t2 * 1000:.1f} ms: {100 * t2 / t1:.2f}% of the first "
              "(target <= 2%)")
        print(f"journal            {size / 1e6:.2f} MB: {size / raw:.3f}x the rollouts "
              f"(target <= 0.10), {size / zst:.2f}x zstd -3 per file (target <= 0.5)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
