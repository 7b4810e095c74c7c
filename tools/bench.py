"""``agcx bench``: agcx and its peers, measured side by side in one process.

One run feeds the same deterministic workload (:mod:`tools._bench_workload`) to
agcx and to every peer (:mod:`tools._bench_peers`) in turn, on the same disk (a
temp dir under ``--dir``, default the current directory), and prints each
figure with the ratio agcx/peer: agcx in its default durable mode
(``durability="fsync"``) against the durable peers, and in ``flush`` mode
against the non-durable ones.  The machine's own limits
(:mod:`tools._bench_machine`) are measured in the same run, and the issue's
targets are checked (PASS/MISS).  Absolute times drift on shared machines; the
ratios within one run are the point.  ``--repeat N`` runs the timed phases N
times and reports the median of every figure.

Usable as ``python -m tools.bench`` or through the CLI (``agcx bench``), which
calls :func:`add_arguments` and :func:`run`.  This module stays light (the CLI
imports it at start-up); the phases live in :mod:`tools._bench_driver`, the agcx
adapter in :mod:`tools._bench_agcx`.  What each figure means and one full run's
results: ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

# ``python tools/bench.py`` as well as ``python -m tools.bench``.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

__all__ = ["DURABLE", "NONDURABLE", "add_arguments", "main", "run"]

# Stores in the order they run; each group's first is agcx, compared with the rest.
DURABLE = ("agcx", "old-store-durable", "sqlite-full", "jsonl-fsync")
NONDURABLE = ("agcx-flush", "old-store", "sqlite-normal", "jsonl")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``agcx bench`` options to ``parser``."""
    parser.add_argument("--quick", action="store_true", help="small workload (< ~60 s)")
    parser.add_argument("--json", metavar="OUT", help="also write all figures as JSON to OUT")
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="repeat timed phases, report medians"
    )
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help="where to create the temp dir (default: the current directory's filesystem)",
    )
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument("--sessions", type=int, help="override the number of sessions")
    parser.add_argument("--turns", type=int, help="override the mean turns per session")
    parser.add_argument("--long-turns", type=int, help="override the long conversation's turns")
    parser.add_argument("--tiny-sessions", type=int, help="override the RSS phase's sessions")
    parser.add_argument("--tag-events", type=int, help="override the tiny-event count")
    parser.add_argument(
        "--stores",
        help=f"comma-separated subset of stores (default all: {','.join(DURABLE + NONDURABLE)})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument(
        "--langgraph",
        action="store_true",
        help="instead: LangGraph checkpoints, JournalSaver vs AsyncSqliteSaver on one graph "
        "workload (needs the langgraph extra)",
    )
    parser.add_argument(
        "--replication",
        action="store_true",
        help="only the replication phase: save phase with and without agcx replicate, lag, "
        "bytes uploaded, recover --from (docs/REPLICATION.md)",
    )
    parser.add_argument(
        "--replica-url", metavar="URL", help="replicate there (default: moto S3 on loopback)"
    )
    parser.add_argument(
        "--replica-mb", type=int, default=0, metavar="N",
        help="also time recover --from of a replica grown to about N MB",
    )
    parser.add_argument(
        "--cli",
        action="store_true",
        help="time the agcx commands on 10,000 sessions and 1,000,000 events instead "
        "(journals built once and kept under --dir/agcx-bench-cli)",
    )
    parser.add_argument(
        "--fork",
        action="store_true",
        help="instead: fork_session and pop_message against rewriting the session, by the "
        "source's size (time and bytes)",
    )
    parser.add_argument("--rss-child", nargs=2, metavar=("STORE", "ROOT"), help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the bench as configured by ``args`` (from :func:`add_arguments`); return
    the exit code.  The driver is imported here, not at module import."""
    if getattr(args, "langgraph", False):
        from tools._bench_langgraph import run_langgraph_bench

        return run_langgraph_bench(args)
    if getattr(args, "replication", False):
        from tools._bench_replicate import run_replication_bench

        return run_replication_bench(args)
    if getattr(args, "cli", False):
        from tools._bench_cli import run_cli_bench

        return run_cli_bench(args)
    if getattr(args, "fork", False):
        from tools._bench_fork import run_fork_bench

        return run_fork_bench(args)
    from tools._bench_driver import run_bench

    return run_bench(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="agcx bench", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
