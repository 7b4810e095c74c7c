"""The ``agcx bench`` driver: phases, figures, targets and the report.

:mod:`tools.bench` is the light entry point (options, ``run``); this module
holds the work and is imported only when a bench runs, so the ``agcx`` command
line does not pay for it at start-up.  See :mod:`tools.bench` for what is
measured and why.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from tools._bench_agcx import AgcxPeer
from tools._bench_machine import (
    IoCounters,
    LatencyStats,
    fdatasync_prealloc_latency,
    fsync_append_latency,
    msgpack_mbps,
    peak_rss_bytes,
    proc_io_write_bytes,
    sequential_write_mbps,
    zstd_mbps,
)
from tools._bench_peers import JsonlPeer, OldStore, Peer, SQLitePeer
from tools._bench_workload import SaveOp, TagOp, Workload
from tools.bench import DURABLE, NONDURABLE

__all__ = ["Plan", "run_bench"]

Figures = dict[str, Any]


def make_peer(name: str) -> Peer:
    """A fresh store instance by its bench name."""
    factories: dict[str, Callable[[], Peer]] = {
        "agcx": lambda: AgcxPeer("fsync"),
        "agcx-flush": lambda: AgcxPeer("flush"),
        "agcx-none": lambda: AgcxPeer("none"),
        "old-store": lambda: OldStore(durable=False),
        "old-store-durable": lambda: OldStore(durable=True),
        "sqlite-normal": lambda: SQLitePeer("NORMAL"),
        "sqlite-full": lambda: SQLitePeer("FULL"),
        "jsonl": lambda: JsonlPeer(fsync=False),
        "jsonl-fsync": lambda: JsonlPeer(fsync=True),
    }
    return factories[name]()


@attrs.frozen
class Plan:
    """Sizes of one bench run."""

    seed: int = 0
    sessions: int = 200
    turns: int = 50
    agents: int = 4
    tag_events: int = 1000
    tag_writers: int = 8
    long_turns: int = 500
    window: int = 10
    loads: int = 200
    deletes: int = 20
    opens: int = 5
    replays: int = 3
    scale: int = 10
    tiny_sessions: int = 10_000
    tiny_stores: tuple[str, ...] = ("agcx", "old-store-durable", "sqlite-full", "jsonl-fsync")
    probe_n: int = 200
    seq_mb: int = 256
    stores: tuple[str, ...] = DURABLE + NONDURABLE
    # Stores whose long conversation is measured (the old store's takes seconds).
    long_stores: tuple[str, ...] = DURABLE + NONDURABLE

    @classmethod
    def quick(cls, seed: int = 0) -> Plan:
        return cls(
            seed=seed,
            sessions=40,
            turns=20,
            tag_events=200,
            loads=40,
            deletes=8,
            opens=3,
            replays=2,
            tiny_stores=("agcx", "sqlite-full", "jsonl-fsync"),
            long_stores=tuple(s for s in DURABLE + NONDURABLE if not s.startswith("old-store")),
            probe_n=100,
            seq_mb=64,
        )


# -- helpers ----------------------------------------------------------------------------


def _new_dir(base: Path, name: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    return d


_DEVICE_STAT: str | None = None  # /sys/dev/block/M:m/stat of the bench dir's device


def _set_device(path: Path) -> None:
    global _DEVICE_STAT
    st = os.stat(path)
    cand = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/stat"
    _DEVICE_STAT = cand if os.path.exists(cand) else None


def _device_written() -> int | None:
    """Bytes written to the bench dir's block device so far (all processes)."""
    if _DEVICE_STAT is None:
        return None
    try:
        with open(_DEVICE_STAT, encoding="ascii") as fh:
            return int(fh.read().split()[6]) * 512
    except (OSError, ValueError, IndexError):
        return None


def _io() -> tuple[IoCounters | None, int | None]:
    return proc_io_write_bytes(), _device_written()


def _io_delta(
    before: tuple[IoCounters | None, int | None], after: tuple[IoCounters | None, int | None]
) -> dict[str, int | None]:
    """Bytes written during a phase.

    ``wchar``: bytes this process passed to write calls (deterministic; the
    figure the targets use).  ``write_bytes``: page-cache bytes this process
    dirtied; on kernels with large folios a small write into a large folio
    counts the whole folio, so it can exceed what reaches the disk many times
    over.  ``device``: sectors written to the block device by *every* process
    meanwhile (noisy on a shared machine, but what the disk really saw).
    """
    out: dict[str, int | None] = {"wchar": None, "write_bytes": None, "device": None}
    (a, da), (b, db) = before, after
    if a is not None and b is not None:
        d = b - a
        out["wchar"], out["write_bytes"] = d.wchar, d.write_bytes
    if da is not None and db is not None:
        out["device"] = db - da
    return out


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def _window_median(samples: Sequence[float], lo: int, hi: int) -> float:
    return _median(samples[lo:hi])


def _lat(samples: Sequence[float]) -> dict[str, float]:
    s = LatencyStats.from_samples(samples)
    return {"p50": s.p50, "p99": s.p99, "mean": s.mean, "max": s.max}


def _run_threads(
    work: Sequence[Sequence[Any]], fn: Callable[[Any], None]
) -> tuple[float, list[float]]:
    """Run ``fn`` over each list in its own thread; return wall time and all latencies."""
    barrier = threading.Barrier(len(work) + 1)
    lat: list[list[float]] = [[] for _ in work]
    errors: list[BaseException] = []

    def body(i: int) -> None:
        out = lat[i]
        perf = time.perf_counter
        try:
            barrier.wait()
            for item in work[i]:
                t0 = perf()
                fn(item)
                out.append(perf() - t0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(len(work))]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall, [x for xs in lat for x in xs]


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _each(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[float]:
    """Latency of ``fn(item)`` for each item, in order."""
    out = []
    perf = time.perf_counter
    for item in items:
        t0 = perf()
        fn(item)
        out.append(perf() - t0)
    return out


def _by_agent(ops: Sequence[SaveOp]) -> list[list[SaveOp]]:
    """The save stream split per simulated agent (each in its own order).

    The workload tags each session ``agent-<n>`` after the agent that worked on
    it; an agent's saves are sequential in its own clock.
    """
    groups: dict[str, list[SaveOp]] = {}
    for op in ops:
        groups.setdefault(op.tags[0], []).append(op)
    return [groups[k] for k in sorted(groups)]


def _remap(op: SaveOp, k: int) -> SaveOp:
    """``op`` on the k-th copy of its session (another id): for scaled journals."""
    if k == 0:
        return op
    sid = uuid.UUID(op.session_id)
    return attrs.evolve(op, session_id=str(uuid.UUID(int=sid.int ^ (k << 80))))


# -- per-store phases -------------------------------------------------------------------


@attrs.define
class Ctx:
    """What every phase needs: the plan, the workload and its derived streams."""

    plan: Plan
    base: Path
    workload: Workload
    ops: list[SaveOp]
    per_agent: list[list[SaveOp]]
    long_ops: list[SaveOp]
    tags1: list[TagOp]
    tags8: list[list[TagOp]]
    load_ids: list[str]
    delete_ids: list[str]
    log: Callable[[str], None]


def make_ctx(plan: Plan, base: Path, log: Callable[[str], None]) -> Ctx:
    w = Workload(seed=plan.seed, sessions=plan.sessions, turns=plan.turns, agents=plan.agents)
    ops = list(w.iter_saves())
    ids = list(w.session_ids)
    rng = random.Random(f"bench:{plan.seed}")
    load_ids = [ids[rng.randrange(len(ids))] for _ in range(plan.loads)]
    delete_ids = rng.sample(ids, min(plan.deletes, len(ids)))
    tags1 = w.tag_ops(plan.tag_events, 1)[0]
    # Other labels than the 1-writer run's, so every event changes state.
    tags8 = [
        [TagOp(op.session_id, f"w{plan.tag_writers}-{op.tag}") for op in ws]
        for ws in w.tag_ops(plan.tag_events, plan.tag_writers)
    ]
    return Ctx(
        plan=plan,
        base=base,
        workload=w,
        ops=ops,
        per_agent=_by_agent(ops),
        long_ops=w.long_conversation(plan.long_turns),
        tags1=tags1,
        tags8=tags8,
        load_ids=load_ids,
        delete_ids=delete_ids,
        log=log,
    )


def measure_store(ctx: Ctx, name: str, keep: bool = False) -> tuple[Figures, Path | None]:
    """Every per-store figure; returns them and (if ``keep``) the filled directory."""
    plan = ctx.plan
    f: Figures = {}
    n = len(ctx.ops)

    # Saves by several agent threads at once (the headline figure).
    d = _new_dir(ctx.base, name)
    peer = make_peer(name)
    peer.open(d)
    io0 = _io()
    wall, lat = _run_threads(ctx.per_agent, peer.save)
    peer.close()
    f["save_io"] = _io_delta(io0, _io())
    if not peer.durable:
        # Nothing forces the pages out within the phase: the device figure
        # would be whatever writeback happened to run meanwhile.
        f["save_io"]["device"] = None
    f["saves_per_s"] = n / wall
    f["save_s"] = wall
    f["save_lat"] = _lat(lat)
    f["size_on_disk"] = peer.size_on_disk()

    # Open + list after a reopen.
    opens: list[float] = []
    for _ in range(plan.opens):
        peer = make_peer(name)
        t0 = time.perf_counter()
        peer.open(d)
        listing = peer.list_sessions()
        opens.append(time.perf_counter() - t0)
        if len(listing) != ctx.plan.sessions:
            raise AssertionError(f"{name}: listed {len(listing)} sessions")
        peer.close()
    f["open_list_s"] = _median(opens)

    peer = make_peer(name)
    peer.open(d)
    # Loads.
    load_lat = _each(peer.load, ctx.load_ids)
    f["load_lat"] = _lat(load_lat)
    if isinstance(peer, AgcxPeer):
        native = _each(peer.load_native, ctx.load_ids)
        f["load_native_lat"] = _lat(native)
    # Tiny durable events: 1 writer, then several.  The machine's fsync latency
    # is probed right before, so the fraction of it is not skewed by load drift.
    if name == "agcx":
        f["fsync_probe_s"] = fsync_append_latency(ctx.base, plan.probe_n).p50
        f["fdatasync_probe_s"] = fdatasync_prealloc_latency(ctx.base, plan.probe_n).p50
    io0 = _io()
    wall1, _ = _run_threads([ctx.tags1], lambda op: peer.set_tag(op.session_id, op.tag))
    f["tags1_per_s"] = len(ctx.tags1) / wall1
    walln, _ = _run_threads(ctx.tags8, lambda op: peer.set_tag(op.session_id, op.tag))
    f["tags8_per_s"] = sum(len(x) for x in ctx.tags8) / walln
    f["tags_io"] = _io_delta(io0, _io())
    # Deletes.
    del_lat = _each(peer.delete, ctx.delete_ids)
    f["delete_lat"] = _lat(del_lat)
    peer.close()
    kept: Path | None = d
    if not keep:
        shutil.rmtree(d, ignore_errors=True)
        kept = None

    # Single-threaded saves: the sessions of the first simulated agent (whole
    # sessions, so the same mix of session lengths), saved in order by one thread.
    one = ctx.per_agent[0]
    d1 = _new_dir(ctx.base, name + "-1t")
    peer = make_peer(name)
    peer.open(d1)
    wall, lat = _run_threads([one], peer.save)
    peer.close()
    f["saves1_per_s"] = len(one) / wall
    f["save1_lat"] = _lat(lat)
    shutil.rmtree(d1, ignore_errors=True)

    # One thread saving every session round-robin (the whole stream in schedule
    # order, sessions interleaved), durable stores only: saves/s and the
    # process's CPU per save, the caller's model building included.
    if peer.durable:
        drr = _new_dir(ctx.base, name + "-rr")
        peer = make_peer(name)
        peer.open(drr)
        cpu0 = time.process_time()
        wall, lat = _run_threads([ctx.ops], peer.save)
        cpu = time.process_time() - cpu0
        peer.close()
        shutil.rmtree(drr, ignore_errors=True)
        f["rr1_per_s"] = n / wall
        f["rr1_cpu_per_save_s"] = cpu / n
        f["rr1_lat"] = _lat(lat)

    # One long conversation: save latency at turn 1 vs turn 500.
    if name in plan.long_stores:
        dl = _new_dir(ctx.base, name + "-long")
        peer = make_peer(name)
        peer.open(dl)
        _, lat = _run_threads([ctx.long_ops], peer.save)
        peer.close()
        shutil.rmtree(dl, ignore_errors=True)
        w, t = plan.window, len(ctx.long_ops)
        f["long_first_s"] = _window_median(lat, 0, w)
        f["long_last_s"] = _window_median(lat, t - w, t)
        f["long_ratio"] = f["long_last_s"] / f["long_first_s"]
        f["long_mean_s"] = sum(lat) / len(lat)
    return f, kept


# -- agcx-only phases -------------------------------------------------------------------


def _build_agcx(root: Path, ops: Sequence[SaveOp], copies: range) -> None:
    """Append ``copies`` of the save stream (remapped ids) to the store at ``root``.

    Built with ``durability="none"``: the bytes on disk are the same as a durable
    store's; only the build is faster.
    """
    peer = AgcxPeer("none")
    peer.open(root)
    for k in copies:
        for op in ops:
            peer.save(_remap(op, k))
    peer.close()


def _open_times(root: Path, n: int, snapshots: bool) -> tuple[float, int]:
    from journal._store import SessionStore

    times: list[float] = []
    replayed = 0
    for _ in range(n):
        t0 = time.perf_counter()
        store = SessionStore.open(root, snapshots=snapshots)
        times.append(time.perf_counter() - t0)
        replayed = store._runner.replayed
        store.close()
    return _median(times), replayed


def measure_agcx_scaling(ctx: Ctx) -> Figures:
    """Open with projection state vs full replay at 1x and 10x; ``at()`` mid-history."""
    from journal._store import SessionStore

    plan = ctx.plan
    f: Figures = {}
    d1 = _new_dir(ctx.base, "agcx-1x")
    _build_agcx(d1, ctx.ops, range(1))
    d10 = _new_dir(ctx.base, "agcx-10x")
    shutil.rmtree(d10)
    shutil.copytree(d1, d10)
    _build_agcx(d10, ctx.ops, range(1, plan.scale))
    for label, d in (("1x", d1), (f"{plan.scale}x", d10)):
        with SessionStore.open(d, readonly=True) as s:
            js = s.journal.statistics()
        g: Figures = {"records": js.records, "journal_bytes": js.bytes}
        g["open_state_s"], g["open_state_replayed"] = _open_times(d, plan.opens, True)
        g["replay_s"], _ = _open_times(d, plan.replays, False)
        g["replay_events_per_s"] = js.records / g["replay_s"]
        g["replay_mb_per_s"] = js.bytes / 1e6 / g["replay_s"]
        f[label] = g
    f["open_state_ratio"] = f[f"{plan.scale}x"]["open_state_s"] / f["1x"]["open_state_s"]

    # at(): a read-only view as of the middle of the 1x history.
    store = SessionStore.open(d1)
    mid = store.journal.statistics().last_seq // 2
    at_t: list[float] = []
    at_list: list[float] = []
    at_load: list[float] = []
    for _ in range(plan.replays):
        t0 = time.perf_counter()
        view = store.at(mid)
        t1 = time.perf_counter()
        metas = view.list_sessions()
        t2 = time.perf_counter()
        view.load_session(metas[0].id)
        t3 = time.perf_counter()
        at_t.append(t1 - t0)
        at_list.append(t2 - t1)
        at_load.append(t3 - t2)
    store.close()
    f["at_seq"] = mid
    f["at_s"] = _median(at_t)
    f["at_list_s"] = _median(at_list)
    f["at_load_s"] = _median(at_load)
    shutil.rmtree(d1, ignore_errors=True)
    shutil.rmtree(d10, ignore_errors=True)
    return f


def measure_agcx_redaction(ctx: Ctx, runs: int = 3) -> Figures:
    """CPU time per save of the save stream with redaction on (the default)
    and off, durability ``none``, alternating runs in this process (medians)."""
    from journal._redact import RedactionPolicy

    on: list[float] = []
    off: list[float] = []
    for r in range(runs):
        for redact in (True, False) if r % 2 == 0 else (False, True):
            root = _new_dir(ctx.base, f"agcx-redact-{r}-{redact}")
            peer = AgcxPeer("none", **({} if redact else {"redact": RedactionPolicy.off()}))
            peer.open(root)
            t0 = time.process_time()
            for op in ctx.ops:
                peer.save(op)
            (on if redact else off).append((time.process_time() - t0) / len(ctx.ops))
            peer.close()
            shutil.rmtree(root, ignore_errors=True)
    f: Figures = {"on_cpu_s": _median(on), "off_cpu_s": _median(off)}
    f["ratio"] = f["on_cpu_s"] / f["off_cpu_s"]
    return f


# -- 10,000 sessions: RSS and open time, measured in a child process ---------------------


def _build_tiny(name: str, root: Path, ops: Sequence[SaveOp]) -> None:
    """Fill ``root`` with ``ops`` for store ``name`` as fast as its format allows."""
    if name.startswith("agcx"):
        _build_agcx(root, ops, range(1))
        return
    if name.startswith("old-store"):
        # Saving one by one rewrites the whole index each time (O(n^2) at 10k
        # sessions): write the same files directly, the index once.
        old = OldStore(durable=False)
        old.open(root)
        for op in ops:
            doc = {
                "id": op.session_id,
                "title": op.title,
                "created": op.ts,
                "updated": op.ts,
                "tags": list(op.tags),
                "messages": op.messages,
            }
            old._write(old._path(op.session_id), old._encode(doc))
            old._index[op.session_id] = {
                "title": op.title,
                "created": op.ts,
                "updated": op.ts,
                "message_count": len(op.messages),
                "tags": list(op.tags),
            }
        with old._index_lock:
            old._write_index_locked()
        old.close()
        return
    fast = {"sqlite-full": "sqlite-normal", "jsonl-fsync": "jsonl"}.get(name, name)
    peer = make_peer(fast)
    peer.open(root)
    for op in ops:
        peer.save(op)
    peer.close()


def _rss_now() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _hwm() -> int:
    """Peak RSS of this process image.

    ``VmHWM`` rather than ``getrusage``: Linux keeps ``ru_maxrss`` across
    fork + exec, so a child would report its parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return peak_rss_bytes()


def rss_child(name: str, root: Path, opens: int) -> Figures:
    """In a fresh process: peak RSS after open + list, and open times."""
    baseline = _hwm()
    t0 = time.perf_counter()
    peer = make_peer(name)
    peer.open(root)
    t1 = time.perf_counter()
    listing = peer.list_sessions()
    t2 = time.perf_counter()
    peak = _hwm()
    now = _rss_now()
    peer.close()
    first_open, first_list = t1 - t0, t2 - t1
    open_t: list[float] = []
    open_list_t: list[float] = []
    for _ in range(opens):
        peer = make_peer(name)
        a = time.perf_counter()
        peer.open(root)
        b = time.perf_counter()
        peer.list_sessions()
        c = time.perf_counter()
        peer.close()
        open_t.append(b - a)
        open_list_t.append(c - a)
    return {
        "sessions": len(listing),
        "baseline_rss": baseline,
        "peak_rss": peak,
        "rss_after_list": now,
        "first_open_s": first_open,
        "first_list_s": first_list,
        "open_s": _median(open_t),
        "open_list_s": _median(open_list_t),
    }


def measure_tiny(ctx: Ctx, dirs: dict[str, Path]) -> dict[str, Figures]:
    """Peak RSS and open times at ``tiny_sessions`` sessions, one child per store."""
    out: dict[str, Figures] = {}
    repo = str(Path(__file__).resolve().parents[1])
    for name, root in dirs.items():
        cmd = [
            sys.executable,
            "-m",
            "tools.bench",
            "--rss-child",
            name,
            str(root),
            "--repeat",
            str(ctx.plan.opens),
        ]
        env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"rss child for {name} failed:\n{res.stderr}")
        out[name] = json.loads(res.stdout)
    return out


def build_tiny(ctx: Ctx) -> dict[str, Path]:
    plan = ctx.plan
    w = Workload(seed=plan.seed + 1, sessions=plan.tiny_sessions, turns=1, agents=plan.agents)
    ops = list(w.iter_saves())
    dirs: dict[str, Path] = {}
    for name in plan.tiny_stores:
        d = _new_dir(ctx.base, f"{name}-tiny")
        t = _timed(functools.partial(_build_tiny, name, d, ops))
        ctx.log(f"  built {plan.tiny_sessions} sessions for {name} in {t:.1f} s")
        dirs[name] = d
    return dirs


# -- machine ------------------------------------------------------------------------------


def measure_machine(ctx: Ctx) -> Figures:
    plan, w = ctx.plan, ctx.workload
    fs = fsync_append_latency(ctx.base, plan.probe_n)
    fd = fdatasync_prealloc_latency(ctx.base, plan.probe_n)
    z = zstd_mbps(w.session_blobs())
    m = msgpack_mbps(w.all_messages())
    return {
        "fsync_append_s": {"p50": fs.p50, "p99": fs.p99},
        "fdatasync_prealloc_s": {"p50": fd.p50, "p99": fd.p99},
        "seq_write_mb_per_s": sequential_write_mbps(ctx.base, plan.seq_mb),
        "zstd3_compress_mb_per_s": z.encode_mbps,
        "zstd3_decompress_mb_per_s": z.decode_mbps,
        "zstd3_ratio": z.ratio,
        "msgpack_pack_mb_per_s": m.encode_mbps,
        "msgpack_unpack_mb_per_s": m.decode_mbps,
    }


# -- one run ------------------------------------------------------------------------------


def run_once(ctx: Ctx, tiny_dirs: dict[str, Path] | None, r: int = 0) -> Figures:
    """One run of every timed phase; run ``r`` rotates the store order (drift)."""
    plan = ctx.plan
    out: Figures = {}
    ctx.log("machine probes")
    out["machine"] = measure_machine(ctx)
    stores: dict[str, Figures] = {}
    k = r % len(plan.stores)
    for name in plan.stores[k:] + plan.stores[:k]:
        t0 = time.perf_counter()
        stores[name], _ = measure_store(ctx, name)
        ctx.log(
            f"  {name:<18} {stores[name]['saves_per_s']:8.0f} saves/s "
            f"({time.perf_counter() - t0:.1f} s)"
        )
    out["stores"] = {name: stores[name] for name in plan.stores}
    ctx.log("agcx: open with projection state vs full replay, at()")
    out["agcx"] = measure_agcx_scaling(ctx)
    ctx.log("agcx: save CPU with secrets redaction on vs off")
    out["agcx"]["redaction"] = measure_agcx_redaction(ctx)
    if tiny_dirs:
        ctx.log(f"{plan.tiny_sessions} sessions: RSS and open time (child processes)")
        out["tiny"] = measure_tiny(ctx, tiny_dirs)
    return out


def _median_merge(runs: Sequence[Any]) -> Any:
    """The median of every numeric leaf over runs of the same shape."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: _median_merge([r[k] for r in runs]) for k in first}
    if isinstance(first, bool) or first is None or isinstance(first, str):
        return first
    if isinstance(first, int | float):
        vals = [r for r in runs if r is not None]
        med = statistics.median(vals)
        return int(med) if isinstance(first, int) and med == int(med) else med
    return first


# -- targets ------------------------------------------------------------------------------


@attrs.frozen
class Target:
    what: str
    value: float | None
    op: str  # ">=" or "<="
    limit: float
    detail: str = ""

    @property
    def ok(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.op == ">=" else self.value <= self.limit


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _io_detail(stores: dict[str, Figures], a: str, b: str) -> str:
    parts = []
    for key in ("write_bytes", "device"):
        r = _ratio(_get(stores.get(a), ("save_io", key)), _get(stores.get(b), ("save_io", key)))
        parts.append(f"{key} {_fmt_ratio(r)}")
    return ", ".join(parts)


def targets(res: Figures, plan: Plan) -> list[Target]:
    s, m, a = res["stores"], res["machine"], res["agcx"]
    g = s.get

    def fig(store: str, *path: str) -> float | None:
        v: Any = g(store)
        for p in path:
            if v is None:
                return None
            v = v.get(p)
        return v  # type: ignore[no-any-return]

    fsync = m["fsync_append_s"]["p50"]
    tiny = res.get("tiny", {}).get("agcx")
    scale = f"{plan.scale}x"
    out = [
        Target(
            "saves/s vs sqlite-full",
            _ratio(fig("agcx", "saves_per_s"), fig("sqlite-full", "saves_per_s")),
            ">=",
            2.0,
        ),
        Target(
            "saves/s vs jsonl-fsync",
            _ratio(fig("agcx", "saves_per_s"), fig("jsonl-fsync", "saves_per_s")),
            ">=",
            1.5,
        ),
        Target(
            "saves/s vs old-store-durable",
            _ratio(fig("agcx", "saves_per_s"), fig("old-store-durable", "saves_per_s")),
            ">=",
            10.0,
        ),
        Target(
            "1-thread round-robin saves/s vs sqlite-full",
            _ratio(fig("agcx", "rr1_per_s"), fig("sqlite-full", "rr1_per_s")),
            ">=",
            1.5,
        ),
        Target(
            "1-thread round-robin saves/s vs jsonl-fsync",
            _ratio(fig("agcx", "rr1_per_s"), fig("jsonl-fsync", "rr1_per_s")),
            ">=",
            1.2,
        ),
        Target(
            "CPU per durable save (1 thread) vs jsonl-fsync",
            _ratio(fig("agcx", "rr1_cpu_per_save_s"), fig("jsonl-fsync", "rr1_cpu_per_save_s")),
            "<=",
            1.0,
        ),
        Target(
            "bytes written (wchar) vs old-store-durable",
            _ratio(fig("agcx", "save_io", "wchar"), fig("old-store-durable", "save_io", "wchar")),
            "<=",
            0.2,
            _io_detail(s, "agcx", "old-store-durable"),
        ),
        Target(
            "size on disk vs jsonl-fsync",
            _ratio(fig("agcx", "size_on_disk"), fig("jsonl-fsync", "size_on_disk")),
            "<=",
            0.35,
        ),
        Target(
            "size on disk vs sqlite-full",
            _ratio(fig("agcx", "size_on_disk"), fig("sqlite-full", "size_on_disk")),
            "<=",
            0.6,
        ),
        Target(
            f"save latency turn {plan.long_turns} / turn 1 (median of {plan.window})",
            fig("agcx", "long_ratio"),
            "<=",
            1.5,
        ),
        Target(
            "load p50 vs old-store-durable",
            _ratio(
                fig("agcx", "load_native_lat", "p50"), fig("old-store-durable", "load_lat", "p50")
            ),
            "<=",
            1.0,
            "model objects; as dicts: "
            + _fmt_ratio(
                _ratio(fig("agcx", "load_lat", "p50"), fig("old-store-durable", "load_lat", "p50"))
            ),
        ),
        Target(
            "tiny durable events, 1 writer x fsync latency",
            (fig("agcx", "tags1_per_s") or 0) * (fig("agcx", "fsync_probe_s") or fsync),
            ">=",
            0.8,
            f"fsync p50 {(fig('agcx', 'fsync_probe_s') or fsync) * 1e3:.3f} ms, probed just before",
        ),
        Target(
            f"tiny durable events, {plan.tag_writers} writers / 1 writer",
            _ratio(fig("agcx", "tags8_per_s"), fig("agcx", "tags1_per_s")),
            ">=",
            4.0,
        ),
        Target(
            f"open with projection state, {scale} / 1x journal",
            a.get("open_state_ratio"),
            "<=",
            2.0,
        ),
        Target(
            f"open with projection state at {plan.tiny_sessions} sessions (ms)",
            None if tiny is None else tiny["open_s"] * 1e3,
            "<=",
            20.0,
        ),
        Target(
            f"full replay events/s ({scale} journal)",
            a.get(scale, {}).get("replay_events_per_s"),
            ">=",
            100_000.0,
        ),
        Target(
            "flush mode saves/s vs jsonl",
            _ratio(fig("agcx-flush", "saves_per_s"), fig("jsonl", "saves_per_s")),
            ">=",
            0.5,
        ),
        Target(
            "flush mode bytes written (wchar) vs jsonl",
            _ratio(fig("agcx-flush", "save_io", "wchar"), fig("jsonl", "save_io", "wchar")),
            "<=",
            0.4,
            _io_detail(s, "agcx-flush", "jsonl"),
        ),
    ]
    return out


# -- printing -----------------------------------------------------------------------------


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.3g}x" if r < 100 else f"{r:.0f}x"


def _num(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "ms":
        x = v * 1e3
        return (
            f"{x:.3f}"
            if x < 1
            else f"{x:.2f}"
            if x < 10
            else f"{x:.1f}"
            if x < 1000
            else f"{x:.0f}"
        )
    if unit == "MB":
        return f"{v / 1e6:.2f}"
    if unit == "x":
        return f"{v:.2f}"
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


# (label, path into the store's figures, unit, higher is better)
ROWS: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("saves/s ({agents} agent threads)", ("saves_per_s",), "/s", True),
    ("saves/s (1 thread)", ("saves1_per_s",), "/s", True),
    ("saves/s (1 thread, round-robin)", ("rr1_per_s",), "/s", True),
    ("CPU ms per save (1 thread, round-robin)", ("rr1_cpu_per_save_s",), "ms", False),
    ("save p50 ms ({agents} threads)", ("save_lat", "p50"), "ms", False),
    ("save p99 ms ({agents} threads)", ("save_lat", "p99"), "ms", False),
    ("save p50 ms (1 thread)", ("save1_lat", "p50"), "ms", False),
    ("bytes written MB (wchar)", ("save_io", "wchar"), "MB", False),
    ("bytes written MB (write_bytes)", ("save_io", "write_bytes"), "MB", False),
    ("bytes written MB (device, all procs)", ("save_io", "device"), "MB", False),
    ("size on disk MB", ("size_on_disk",), "MB", False),
    ("open + list ms", ("open_list_s",), "ms", False),
    ("load p50 ms", ("load_lat", "p50"), "ms", False),
    ("load p99 ms", ("load_lat", "p99"), "ms", False),
    ("load p50 ms, model objects", ("load_native_lat", "p50"), "ms", False),
    ("load p99 ms, model objects", ("load_native_lat", "p99"), "ms", False),
    ("tiny events/s, 1 writer", ("tags1_per_s",), "/s", True),
    ("tiny events/s, {writers} writers", ("tags8_per_s",), "/s", True),
    ("delete p50 ms", ("delete_lat", "p50"), "ms", False),
    ("long conv: save ms, turns 1-{w}", ("long_first_s",), "ms", False),
    ("long conv: save ms, turns {lo}-{t}", ("long_last_s",), "ms", False),
    ("long conv: last/first", ("long_ratio",), "x", False),
    ("long conv: mean save ms", ("long_mean_s",), "ms", False),
]


def _get(d: Any, path: Sequence[str]) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(
            h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(headers)
        ),
        "  ".join("-" * w for w in widths),
    ]
    for r in rows:
        lines.append(
            "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        )
    return "\n".join(line.rstrip() for line in lines)


def store_table(res: Figures, plan: Plan, group: Sequence[str]) -> str:
    stores = res["stores"]
    present = [s for s in group if s in stores]
    if not present:
        return ""
    ours, peers = present[0], present[1:]
    headers = ["figure", ours] + [h for p in peers for h in (p, f"{ours}/{p}")]
    rows = []
    fmt = {
        "agents": plan.agents,
        "writers": plan.tag_writers,
        "w": plan.window,
        "lo": plan.long_turns - plan.window + 1,
        "t": plan.long_turns,
    }
    for label, path, unit, _ in ROWS:
        vals = [_get(stores[s], path) for s in present]
        if all(v is None for v in vals):
            continue
        row = [label.format(**fmt), _num(vals[0], unit)]
        for v in vals[1:]:
            row += [_num(v, unit), _fmt_ratio(_ratio(vals[0], v))]
        rows.append(row)
    return _table(headers, rows)


def agcx_table(res: Figures, plan: Plan) -> str:
    a = res["agcx"]
    rows = []
    for label in ("1x", f"{plan.scale}x"):
        g = a[label]
        rows.append(
            [
                f"{label} journal",
                f"{g['records']:,}",
                _num(g["journal_bytes"], "MB"),
                _num(g["open_state_s"], "ms"),
                _num(g["replay_s"], "ms"),
                f"{g['replay_events_per_s']:,.0f}",
                f"{g['replay_mb_per_s']:.1f}",
            ]
        )
    t = _table(
        [
            "journal",
            "records",
            "MB",
            "open w/ state ms",
            "full replay ms",
            "replay events/s",
            "replay MB/s",
        ],
        rows,
    )
    return (
        t
        + f"\nopen with state {plan.scale}x/1x: {_fmt_ratio(a['open_state_ratio'])}"
        + f"\nat(seq {a['at_seq']}) mid-history: {_num(a['at_s'], 'ms')} ms"
        + f" (then list {_num(a['at_list_s'], 'ms')} ms, load one {_num(a['at_load_s'], 'ms')} ms)"
        + _redaction_line(a.get("redaction"))
    )


def _redaction_line(r: Figures | None) -> str:
    if not r:
        return ""
    return (
        f"\nsecrets redaction: {r['on_cpu_s'] * 1e6:.1f} us CPU per save on, "
        f"{r['off_cpu_s'] * 1e6:.1f} us off ({_fmt_ratio(r['ratio'])}, durability none)"
    )


def tiny_table(res: Figures, plan: Plan) -> str:
    tiny = res.get("tiny")
    if not tiny:
        return ""
    rows = []
    for name, g in tiny.items():
        rows.append(
            [
                name,
                f"{g['sessions']:,}",
                _num(g["peak_rss"], "MB"),
                _num(g["peak_rss"] - g["baseline_rss"], "MB"),
                _num(g["first_open_s"], "ms"),
                _num(g["open_s"], "ms"),
                _num(g["open_list_s"], "ms"),
            ]
        )
    return _table(
        [
            "store",
            "sessions",
            "peak RSS MB",
            "RSS over baseline MB",
            "first open ms",
            "open ms (median)",
            "open+list ms",
        ],
        rows,
    )


def machine_table(res: Figures, plan: Plan) -> str:
    m, s = res["machine"], res["stores"]
    fs, fd = m["fsync_append_s"]["p50"], m["fdatasync_prealloc_s"]["p50"]
    lines = [
        f"fsync of a 4 KiB append:            p50 {fs * 1e3:.3f} ms  p99 "
        f"{m['fsync_append_s']['p99'] * 1e3:.3f} ms  (1/p50 = {1 / fs:,.0f}/s)",
        f"fdatasync, 4 KiB, no size change:   p50 {fd * 1e3:.3f} ms  p99 "
        f"{m['fdatasync_prealloc_s']['p99'] * 1e3:.3f} ms  (1/p50 = {1 / fd:,.0f}/s)",
        f"sequential write:                   {m['seq_write_mb_per_s']:,.0f} MB/s",
        f"zstd -3 on the sessions:            compress {m['zstd3_compress_mb_per_s']:,.0f} MB/s, "
        f"decompress {m['zstd3_decompress_mb_per_s']:,.0f} MB/s, ratio {m['zstd3_ratio']:.3f}",
        f"msgpack on the messages:            pack {m['msgpack_pack_mb_per_s']:,.0f} MB/s, "
        f"unpack {m['msgpack_unpack_mb_per_s']:,.0f} MB/s",
    ]
    a = s.get("agcx")
    if a:
        logical = res["workload"]["logical_bytes"]
        save_mbps = logical / 1e6 / a["save_s"]
        pfs = a.get("fsync_probe_s") or fs
        pfd = a.get("fdatasync_probe_s") or fd
        frac = [
            f"fsync / fdatasync p50 probed just before agcx's tiny events: "
            f"{pfs * 1e3:.3f} / {pfd * 1e3:.3f} ms",
            f"agcx tiny events/s (1 writer) x fsync p50      = {a['tags1_per_s'] * pfs:.2f}"
            f"  (x fdatasync p50 = {a['tags1_per_s'] * pfd:.2f})",
            f"agcx tiny events/s ({plan.tag_writers} writers) x fsync p50     = "
            f"{a['tags8_per_s'] * pfs:.2f} events per fsync time",
            f"agcx saves/s ({plan.agents} threads) x fsync p50          = "
            f"{a['saves_per_s'] * fs:.2f}",
            f"agcx save throughput (logical msgpack MB/s)  = {save_mbps:.1f} = "
            f"{save_mbps / m['zstd3_compress_mb_per_s']:.3f} of zstd compress, "
            f"{save_mbps / m['msgpack_pack_mb_per_s']:.3f} of msgpack pack",
        ]
        wb = _get(a, ("save_io", "wchar"))
        if wb:
            rate = wb / 1e6 / a["save_s"]
            frac.append(
                f"agcx save-phase write rate (wchar)          = {rate:.1f} MB/s = "
                f"{rate / m['seq_write_mb_per_s']:.4f} of sequential write"
            )
        sc = res["agcx"][f"{plan.scale}x"]
        frac.append(
            f"agcx full replay MB/s (stored bytes)         = {sc['replay_mb_per_s']:.1f} = "
            f"{sc['replay_mb_per_s'] / m['zstd3_decompress_mb_per_s']:.3f} of zstd decompress"
        )
        lines += ["", "agcx as a fraction of the machine:"] + ["  " + x for x in frac]
    return "\n".join(lines)


def targets_table(ts: Sequence[Target]) -> str:
    rows = []
    for t in ts:
        v = "-" if t.value is None else f"{t.value:.3g}"
        verdict = "n/a" if t.ok is None else "PASS" if t.ok else "MISS"
        lim = f"{t.op} {t.limit:g}"
        rows.append([t.what, v, lim, verdict, t.detail])
    return _table(["target (agcx)", "measured", "target", "", ""], rows)


def report(res: Figures, plan: Plan) -> str:
    w = res["workload"]
    parts = [
        f"agcx bench  {res['meta']['date']}  {res['meta']['machine']}",
        f"workload: seed {plan.seed}, {w['sessions']} sessions x ~{plan.turns} turns, "
        f"{w['saves']:,} saves, {w['messages']:,} messages, "
        f"{w['logical_bytes'] / 1e6:.1f} MB logical (msgpack); fingerprint {w['fingerprint']}",
        f"runs: {res['meta']['repeat']} (medians)  dir: {res['meta']['dir']}",
        "",
        "== durable: agcx (fsync) vs durable peers ==",
        store_table(res, plan, DURABLE),
        "",
        "== non-durable: agcx (flush) vs non-durable peers ==",
        store_table(res, plan, NONDURABLE),
        "",
        "== agcx: open with projection state vs full replay ==",
        agcx_table(res, plan),
    ]
    tt = tiny_table(res, plan)
    if tt:
        parts += ["", f"== {plan.tiny_sessions:,} small sessions (child process per store) ==", tt]
    parts += [
        "",
        "== machine ==",
        machine_table(res, plan),
        "",
        "== targets ==",
        targets_table(res["targets"]),
    ]
    return "\n".join(parts)


# -- entry points -------------------------------------------------------------------------


def plan_from_args(args: argparse.Namespace) -> Plan:
    plan = Plan.quick(args.seed) if args.quick else Plan(seed=args.seed)
    changes: dict[str, Any] = {}
    for opt, field in (
        ("sessions", "sessions"),
        ("turns", "turns"),
        ("long_turns", "long_turns"),
        ("tiny_sessions", "tiny_sessions"),
        ("tag_events", "tag_events"),
    ):
        v = getattr(args, opt, None)
        if v is not None:
            changes[field] = v
    if args.stores:
        names = tuple(s.strip() for s in args.stores.split(",") if s.strip())
        unknown = [n for n in names if n not in DURABLE + NONDURABLE]
        if unknown:
            raise SystemExit(f"agcx bench: unknown store(s) {', '.join(unknown)}")
        changes["stores"] = tuple(n for n in DURABLE + NONDURABLE if n in names)
        changes["tiny_stores"] = tuple(n for n in plan.tiny_stores if n in names)
        changes["long_stores"] = tuple(n for n in plan.long_stores if n in names)
    if "long_turns" in changes:
        changes["window"] = min(plan.window, max(1, changes["long_turns"] // 2))
    return attrs.evolve(plan, **changes)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("agcx", "msgpack", "zstandard", "attrs", "anyio"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _git_rev() -> str:
    repo = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def run_bench(args: argparse.Namespace) -> int:
    """Run the bench as configured by ``args``; print the report; return an exit code."""
    if getattr(args, "rss_child", None):
        name, root = args.rss_child
        print(json.dumps(rss_child(name, Path(root), max(1, args.repeat))))
        return 0
    if args.repeat < 1:
        print("agcx bench: --repeat must be >= 1", file=sys.stderr)
        return 2
    plan = plan_from_args(args)
    parent = Path(args.dir) if args.dir else Path.cwd()
    parent.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=".agcx-bench-", dir=parent))
    _set_device(base)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    try:
        log("building the workload")
        ctx = make_ctx(plan, base, log)
        w = ctx.workload
        log(
            f"workload {w.fingerprint()}: {len(ctx.ops)} saves, {w.n_messages} messages, "
            f"{w.total_bytes / 1e6:.1f} MB"
        )
        tiny_dirs: dict[str, Path] | None = None
        if plan.tiny_stores and plan.tiny_sessions:
            log(f"building {plan.tiny_sessions} small sessions per store (not timed)")
            tiny_dirs = build_tiny(ctx)
        runs = []
        for r in range(args.repeat):
            log(f"run {r + 1}/{args.repeat}")
            runs.append(run_once(ctx, tiny_dirs, r))
        res: Figures = _median_merge(runs)
        res["workload"] = {
            "seed": plan.seed,
            "sessions": plan.sessions,
            "turns": plan.turns,
            "agents": plan.agents,
            "saves": len(ctx.ops),
            "messages": w.n_messages,
            "logical_bytes": w.total_bytes,
            "fingerprint": w.fingerprint(),
        }
        res["meta"] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.system()} {platform.release()} {platform.machine()}, "
            f"{_cpu_model()}, {os.cpu_count()} CPUs",
            "uname": " ".join(platform.uname()),
            "versions": _versions(),
            "git": _git_rev(),
            "repeat": args.repeat,
            "quick": bool(args.quick),
            "dir": str(parent.resolve()),
            "plan": attrs.asdict(plan),
            "elapsed_s": time.perf_counter() - started,
        }
        ts = targets(res, plan)
        res["targets"] = ts
        print(report(res, plan))
        if args.json:
            res["targets"] = [
                {"what": t.what, "value": t.value, "op": t.op, "limit": t.limit, "ok": t.ok}
                for t in ts
            ]
            res["runs"] = runs if args.repeat > 1 else []
            Path(args.json).write_text(json.dumps(res, indent=1, default=str))
        log("done")
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0
