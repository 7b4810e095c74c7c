"""``agcx bench --replication``: the replication phase (docs/REPLICATION.md).

It runs the bench's durable save phase (the workload's agents saving at once,
``durability="fsync"``) twice per round, alternating: once alone, once while
``agcx replicate`` ships the journal (default interval) to an S3 API on
loopback (moto's server, in its own process, as a real endpoint would be;
``--replica-url`` names another). The replicator runs in its own process too,
as users run it. Figures:

* writers' saves/s with replication / without (target >= 0.9);
* lag: seconds from a record's time to the upload of the increment holding
  it (the oldest record of each increment), p50/p99 (target p99 <= 2 s);
* bytes uploaded (data and metadata) / the journal's bytes (target <= 1.1);
* ``recover --from`` of the replica: MB/s of segment bytes, download and
  assembly plus the copy through ``recover`` (target >= 100 MB/s); with
  ``--replica-mb N`` on a replica grown to about N MB by copying the journal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools._bench_agcx import AgcxPeer
from tools._bench_driver import _run_threads, make_ctx, plan_from_args

__all__ = ["run_replication_bench"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _moto(env: dict[str, str]) -> Iterator[str]:
    """A moto S3 server in a child process; yields the bucket URL and sets ``env``."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env.update(
            AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
        )
        os.environ.update(env)
        import boto3

        for _ in range(100):
            try:
                boto3.client("s3").create_bucket(Bucket="agcx-bench")
                break
            except Exception:
                time.sleep(0.1)
        yield "s3://agcx-bench"
    finally:
        proc.terminate()
        proc.wait(10)


def _child(root: str, url: str, out: str) -> int:
    """The replicator process: run until SIGTERM, then write the statistics."""
    from journal._replicate import Replicator

    with Replicator(root, url) as r:
        signal.signal(signal.SIGTERM, lambda *_: r.stop())
        print("ready", flush=True)
        r.run()
        r.run_once()  # catch up with the end of the phase
        st = r.statistics()
    Path(out).write_text(json.dumps({**st.to_json(), "lags": list(st.lags)}))
    return 0


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _save_phase(ctx: Any, d: Path, url: str | None, env: dict[str, str]) -> dict[str, Any]:
    peer = AgcxPeer("fsync")
    peer.open(d)  # the journal exists before the replicator opens it
    child = None
    stats_path = d.parent / f"{d.name}.stats.json"
    if url is not None:
        child = subprocess.Popen(
            [sys.executable, "-m", "tools._bench_replicate", "--child", str(d), url,
             str(stats_path)],
            env={**os.environ, **env}, stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the replicator did not start")
    try:
        wall, _ = _run_threads(ctx.per_agent, peer.save)
    finally:
        peer.close()
    out: dict[str, Any] = {"saves_per_s": len(ctx.ops) / wall}
    if child is not None:
        child.send_signal(signal.SIGTERM)
        child.wait(120)
        st = json.loads(stats_path.read_text())
        from journal import Journal

        with Journal.open(d, readonly=True) as j:
            jbytes = j.statistics().bytes
        out.update(
            lag_p50=_pct(st["lags"], 0.5), lag_p99=_pct(st["lags"], 0.99),
            lag_max=max(st["lags"] or [0.0]), increments=len(st["lags"]),
            bytes_put=st["bytes_put"], data_bytes_put=st["data_bytes_put"],
            journal_bytes=jbytes, upload_ratio=st["bytes_put"] / jbytes,
            objects_put=st["objects_put"],
        )
    return out


def _get_all(url: str) -> float:
    """Seconds to GET every object of a replica, 8 at a time, doing nothing with them:
    what the server itself can deliver (the restore's ceiling)."""
    from concurrent.futures import ThreadPoolExecutor

    from journal._objstore import open_store

    st = open_store(url)
    try:
        keys = [o.key for o in st.list("segs/")]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(st.get, keys))
        return time.perf_counter() - t0
    finally:
        st.close()


def _grow(src: Path, dest: Path, mb: int) -> None:
    """A journal of about ``mb`` MB: the workload journal's records, copied again and
    again with new seqs (the bytes per record are the bench's own)."""
    from journal import Journal

    with Journal.open(src, readonly=True) as s:
        recs = list(s.scan())
    with Journal.open(dest, durability="none") as j:
        total = 0
        while total < mb << 20:
            for i in range(0, len(recs), 1000):
                j.copy_records(_renumber(recs[i : i + 1000], j.last_seq))
            total = j.statistics().bytes


def _renumber(recs: list[Any], last: int) -> list[Any]:
    import attrs

    return [attrs.evolve(r, seq=last + 1 + k, ts_ns=time.time_ns()) for k, r in enumerate(recs)]


def run_replication_bench(args: argparse.Namespace) -> int:
    plan = plan_from_args(args)
    parent = Path(args.dir) if args.dir else Path.cwd()
    base = Path(tempfile.mkdtemp(prefix=".agcx-bench-repl-", dir=parent))
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    env: dict[str, str] = {}
    try:
        ctx = make_ctx(plan, base, log)
        log(f"workload: {len(ctx.ops)} saves by {len(ctx.per_agent)} agents")
        with contextlib.ExitStack() as stack:
            url = args.replica_url or stack.enter_context(_moto(env))
            alone: list[float] = []
            withr: list[dict[str, Any]] = []
            for r in range(max(1, args.repeat)):
                # Alternate which goes first: drift in the machine's load hits both.
                for replicated in (False, True) if r % 2 == 0 else (True, False):
                    if replicated:
                        log(f"round {r + 1}: save phase with agcx replicate {url}/r{r}")
                        withr.append(_save_phase(ctx, base / f"repl-{r}", f"{url}/r{r}", env))
                    else:
                        log(f"round {r + 1}: save phase alone")
                        alone.append(
                            _save_phase(ctx, base / f"alone-{r}", None, env)["saves_per_s"]
                        )
            from journal import recover_from_replica

            last = withr[-1]
            log("recover --from the last round's replica")
            t0 = time.perf_counter()
            rep = recover_from_replica(f"{url}/r{len(withr) - 1}", base / "restored")
            restore_s = time.perf_counter() - t0
            big: dict[str, Any] = {}
            if args.replica_mb:
                log(f"growing a journal to {args.replica_mb} MB and replicating it (not timed)")
                _grow(base / f"repl-{len(withr) - 1}", base / "big", args.replica_mb)
                from journal import Journal, replicate

                replicate(base / "big", f"{url}/big", once=True)
                with Journal.open(base / "big", readonly=True) as j:
                    big_bytes = j.statistics().bytes
                log("recover --from the grown replica")
                t0 = time.perf_counter()
                recover_from_replica(f"{url}/big", base / "big-restored")
                big = {"bytes": big_bytes, "seconds": time.perf_counter() - t0}
                big["get_seconds"] = _get_all(f"{url}/big")
        med = sorted(alone)[len(alone) // 2]
        med_w = sorted(x["saves_per_s"] for x in withr)[len(withr) // 2]
        lags = sorted(x["lag_p99"] for x in withr)
        rows = [
            ("saves/s alone (median)", f"{med:,.0f}", ""),
            ("saves/s with replication (median)", f"{med_w:,.0f}", ""),
            ("ratio with / alone", f"{med_w / med:.3f}", ">= 0.9"),
            ("lag p50 / p99 / max (s), last round",
             f"{last['lag_p50']:.3f} / {last['lag_p99']:.3f} / {last['lag_max']:.3f}", ""),
            ("lag p99 (s), median of rounds", f"{lags[len(lags) // 2]:.3f}", "<= 2"),
            ("increments (objects) / journal MB",
             f"{last['increments']} / {last['journal_bytes'] / 1e6:.1f}", ""),
            ("bytes uploaded / journal bytes", f"{last['upload_ratio']:.4f}", "<= 1.1"),
            ("recover --from MB/s (workload replica)",
             f"{rep.bytes / 1e6 / restore_s:.1f} ({rep.bytes / 1e6:.1f} MB in {restore_s:.2f} s)",
             ">= 100"),
        ]
        if big:
            mb = big["bytes"] / 1e6
            rows.append((
                f"recover --from MB/s ({mb:.0f} MB replica)",
                f"{mb / big['seconds']:.1f} ({big['seconds']:.2f} s)", ">= 100",
            ))
            rows.append((
                "  the server alone: GET every object, MB/s",
                f"{mb / big['get_seconds']:.1f} ({big['get_seconds']:.2f} s)", "",
            ))
        width = max(len(r[0]) for r in rows)
        print(f"== replication to {args.replica_url or 'moto S3 on loopback'} ==")
        for what, value, target in rows:
            print(f"{what:<{width}}  {value:>32}  {target}")
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"alone": alone, "with": withr, "restore_s": restore_s,
                 "restore_bytes": rep.bytes, "big": big}, indent=1))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        sys.exit(_child(sys.argv[2], sys.argv[3], sys.argv[4]))
    sys.exit("usage: python -m tools._bench_replicate --child ROOT URL OUT")
