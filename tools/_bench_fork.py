"""``agcx bench --fork``: fork and pop against rewriting the session.

For sources of growing size (one long conversation of the bench workload,
saved whole), each operation is timed and its bytes on disk counted (the
journal's growth), against what a store without the primitive does:

* **fork** (``fork_session``, one ``SessionForked`` event) against a full save
  of the same messages under a new id (a copy);
* **fork at message N/2** against a full save of the first half;
* **pop** (``pop_message``, one ``SessionTruncated`` event) against a full
  save of the conversation without its last message (the rewrite a store
  without truncation events does);
* **load of the fork** against a load of the source (a fork reads its
  source's records through the reference).

The journal runs with ``durability="none"``, so that the figures are the
operations' own work and bytes, not the disk's fdatasync (one per operation
either way), and without trained dictionaries (see :func:`_one_size`). Each
figure is the median of ``--repeat`` x 5 operations.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from journal._dictionary import Trainer
from journal._model import ConversationSnapshot, MessageSnapshot, SessionMetadata, SessionState
from journal._store import SessionStore
from tools._bench_agcx import to_snapshot
from tools._bench_workload import Workload

__all__ = ["run_fork_bench"]

_STATE = SessionState()
_OPS = 5


def _save(store: SessionStore, sid: UUID, snaps: tuple[MessageSnapshot, ...]) -> None:
    now = datetime.now(UTC)
    meta = SessionMetadata(
        id=sid, title="fork bench", created_at=now, updated_at=now, last_accessed=now,
        message_count=len(snaps),
    )
    store.save_session(sid, meta, ConversationSnapshot(sid, snaps), _STATE)


def _load_cold(store: SessionStore, sid: UUID) -> None:
    """A load that reads the log (the store keeps the last loaded bases in memory)."""
    with store._bases_lock:
        store._bases.clear()
    store.load_session(sid)


def _measure(store: SessionStore, op: Callable[[], Any], n: int) -> tuple[float, float]:
    """Median seconds and median journal bytes of ``n`` runs of ``op``."""
    j = store.journal
    times, sizes = [], []
    for _ in range(n):
        before = j.statistics().bytes
        t0 = time.perf_counter()
        op()
        times.append(time.perf_counter() - t0)
        sizes.append(j.statistics().bytes - before)
    return statistics.median(times), statistics.median(sizes)


def _one_size(base: Path, snaps: tuple[MessageSnapshot, ...], n: int) -> dict[str, Any]:
    with SessionStore.open(base, durability="none") as store:
        # No dictionary: one trained on the bench's repeated copies of one
        # conversation would hold its very text and shrink every later copy
        # to almost nothing, which no real history offers.
        store._trainer = Trainer(train_bytes=1 << 62)
        src = uuid4()
        before = store.journal.statistics().bytes
        _save(store, src, snaps)
        source_bytes = store.journal.statistics().bytes - before
        half = len(snaps) // 2
        out: dict[str, Any] = {"messages": len(snaps), "source_bytes": source_bytes}
        out["fork_s"], out["fork_bytes"] = _measure(store, lambda: store.fork_session(src), n)
        out["copy_s"], out["copy_bytes"] = _measure(store, lambda: _save(store, uuid4(), snaps), n)
        out["fork_half_s"], out["fork_half_bytes"] = _measure(
            store, lambda: store.fork_session(src, at_message=half), n
        )
        out["copy_half_s"], out["copy_half_bytes"] = _measure(
            store, lambda: _save(store, uuid4(), snaps[:half]), n
        )
        # Pops: each run takes the last message off a fresh fork of the source
        # (a session of the source's length); the rewrite saves one of the
        # source's length without its last message over its own session.
        forks = [store.fork_session(src) for _ in range(n)]
        it = iter(forks)
        out["pop_s"], out["pop_bytes"] = _measure(store, lambda: store.pop_message(next(it)), n)
        copies = [uuid4() for _ in range(n)]
        for c in copies:
            _save(store, c, snaps)
        it = iter(copies)
        out["rewrite_s"], out["rewrite_bytes"] = _measure(
            store, lambda: _save(store, next(it), snaps[:-1]), n
        )
        out["load_source_s"], _ = _measure(store, lambda: _load_cold(store, src), n)
        out["load_fork_s"], _ = _measure(store, lambda: _load_cold(store, forks[0]), n)
        assert len(store.load_session(forks[0])[1].messages) == len(snaps) - 1
    return out


def run_fork_bench(args: argparse.Namespace) -> int:
    """Run the fork/pop phase; print the figures (and write ``--json``); exit code."""
    quick = bool(getattr(args, "quick", False))
    turns = (25, 100) if quick else (25, 100, 400, 1600)
    repeat = max(1, int(getattr(args, "repeat", 1) or 1))
    parent = Path(args.dir) if getattr(args, "dir", None) else Path.cwd()
    parent.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=".agcx-bench-fork-", dir=parent))
    rows = []
    try:
        wl = Workload(seed=int(getattr(args, "seed", 0) or 0), sessions=1, turns=1, agents=1)
        ops = wl.long_conversation(max(turns))
        msgs = ops[-1].messages
        for t in turns:
            end = len(ops[t - 1].messages)
            snaps = tuple(to_snapshot(m, i) for i, m in enumerate(msgs[:end]))
            rows.append(_one_size(base / str(t), snaps, _OPS * repeat))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ms, kib = 1e3, 1 / 1024
    print(
        "fork and pop vs rewriting the session (durability none; medians; bytes: the "
        "journal's growth)"
    )
    head = (
        f"{'messages':>8} {'source KiB':>10} | {'fork ms':>8} {'copy ms':>8} {'x':>6} "
        f"{'fork B':>7} {'copy KiB':>8} | {'fork@N/2 ms':>11} {'copy ms':>8} | "
        f"{'pop ms':>7} {'rewrite ms':>10} {'x':>6} {'pop B':>6} {'rewrite KiB':>11} | "
        f"{'load src ms':>11} {'load fork ms':>12}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['messages']:>8} {r['source_bytes'] * kib:>10.1f} | {r['fork_s'] * ms:>8.3f} "
            f"{r['copy_s'] * ms:>8.3f} {r['copy_s'] / r['fork_s']:>6.0f} {r['fork_bytes']:>7.0f} "
            f"{r['copy_bytes'] * kib:>8.1f} | {r['fork_half_s'] * ms:>11.3f} "
            f"{r['copy_half_s'] * ms:>8.3f} | {r['pop_s'] * ms:>7.3f} "
            f"{r['rewrite_s'] * ms:>10.3f} {r['rewrite_s'] / r['pop_s']:>6.0f} "
            f"{r['pop_bytes']:>6.0f} {r['rewrite_bytes'] * kib:>11.1f} | "
            f"{r['load_source_s'] * ms:>11.3f} {r['load_fork_s'] * ms:>12.3f}"
        )
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps({"fork": rows}, indent=2))
    print(f"({len(rows)} sizes, {_OPS * repeat} operations each)", file=sys.stderr)
    return 0
