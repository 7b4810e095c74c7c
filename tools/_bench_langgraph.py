"""``agcx bench --langgraph``: JournalSaver against LangGraph's AsyncSqliteSaver.

The workload is a real LangGraph graph: an agent loop (model -> tool -> model
..., messages accumulated with ``add_messages``, a scratchpad and a step
counter) run for several turns on several threads. It is run once on a
recording ``InMemorySaver``; the calls it made (``put`` with their
checkpoints, metadata and new versions, ``put_writes``) are then replayed,
identically, against each saver:

* **sequential**: one thread after another, each call awaited (one graph
  running): durable puts/s and writes/s (time spent in ``aput`` /
  ``aput_writes`` only). The two savers take turns call by call, so that both
  meet the same disk: on a shared machine an ``fdatasync`` costs 0.2 ms one
  second and 4 ms the next. In the same loop, the same puts on a third
  JournalSaver called in the caller's thread (no worker-thread hop) and a
  bare ``fdatasync`` after a 4 KiB overwrite: where one put's time goes;
* **concurrent**: every thread at once (``asyncio.gather``, a server running
  many graphs): calls/s over the whole replay (the savers one after the
  other, the order swapped at each ``--repeat``);
* **the graph run**: the graph itself on every thread at once (``ainvoke``,
  LangGraph's default durability): puts/s;
* **get_tuple**: the newest checkpoint of every thread and every fifth one by
  id, read back: gets/s;
* **size on disk**: the directory's bytes after the saver is closed (and the
  journal's after ``prune`` of every thread and a compaction).

Both savers are durable: JournalSaver with ``durability="fsync"``,
AsyncSqliteSaver in WAL mode with ``PRAGMA synchronous=FULL`` (each commit
fsyncs the WAL). The issue's target: at least 1.5x the SQLite saver's durable
puts/s at no more than 0.5x its size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_langgraph_bench"]

_WORDS = [
    "the", "a", "test", "file", "function", "error", "stack", "trace", "import", "module",
    "class", "return", "value", "patch", "diff", "line", "call", "fails", "passes", "assert",
    "fixture", "timeout", "retry", "flaky", "cache", "build", "compile", "type", "check",
    "lint", "run", "output", "expected", "actual", "because", "when", "then", "config", "path",
    "directory", "json", "parse", "schema", "field", "missing", "null", "index", "offset",
]

Call = tuple[str, tuple[Any, ...]]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def build_graph(checkpointer: Any, seed: int, tool_calls: int) -> Any:
    """The agent loop: model -> tool -> model ... until ``tool_calls`` tool
    results since the user's message, then end."""
    import operator
    from typing import Annotated, TypedDict

    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages

    # Built by call: this module's annotations are strings, and LangGraph
    # resolves a state's in the module's globals, where these names are not.
    State = TypedDict(  # noqa: UP013
        "State",
        {
            "messages": Annotated[list[Any], add_messages],
            "scratchpad": str,
            "steps": Annotated[int, operator.add],
        },
    )
    rng = random.Random(seed)

    def model(state: Any) -> dict[str, Any]:
        n = sum(1 for m in state["messages"] if isinstance(m, ToolMessage))
        text = _text(rng, rng.randint(30, 120))
        return {
            "messages": [AIMessage(content=text, id=f"ai-{rng.random()}")],
            "scratchpad": _text(rng, 20) + f" after {n} tool results",
            "steps": 1,
        }

    def tool(state: Any) -> dict[str, Any]:
        body = "\n".join(_text(rng, 12) for _ in range(rng.randint(5, 40)))
        return {
            "messages": [ToolMessage(content=body, tool_call_id=f"c{rng.random()}")],
            "steps": 1,
        }

    def route(state: Any) -> str:
        since_user = 0
        for m in reversed(state["messages"]):
            if isinstance(m, HumanMessage):
                break
            since_user += isinstance(m, ToolMessage)
        return "tool" if since_user < tool_calls else END

    g = StateGraph(State)
    g.add_node("model", model)
    g.add_node("tool", tool)
    g.add_edge(START, "model")
    g.add_conditional_edges("model", route, ["tool", END])
    g.add_edge("tool", "model")
    return g.compile(checkpointer=checkpointer)


def _user_turn(rng: random.Random) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage

    return {"messages": [HumanMessage(content=_text(rng, 25))]}


def record_workload(threads: int, turns: int, tool_calls: int, seed: int) -> list[list[Call]]:
    """Run the agent graph on a recording saver; the calls each thread made, in order."""
    from langgraph.checkpoint.memory import InMemorySaver

    calls: dict[str, list[Call]] = {}

    class Recorder(InMemorySaver):
        def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
            args = copy.deepcopy((config, checkpoint, metadata, new_versions))
            calls.setdefault(config["configurable"]["thread_id"], []).append(("put", args))
            return super().put(config, checkpoint, metadata, new_versions)

        def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
            args = copy.deepcopy((config, writes, task_id, task_path))
            calls.setdefault(config["configurable"]["thread_id"], []).append(("writes", args))
            super().put_writes(config, writes, task_id, task_path)

    graph = build_graph(Recorder(), seed, tool_calls)
    rng = random.Random(seed + 1)
    for t in range(threads):
        cfg = {"configurable": {"thread_id": f"thread-{t}"}}
        for _ in range(turns):
            graph.invoke(_user_turn(rng), cfg)
    return [calls[f"thread-{t}"] for t in range(threads)]


async def _run_graph(
    saver: Any, threads: int, turns: int, tool_calls: int, seed: int
) -> float:
    """Run the graph itself (``ainvoke``) on every thread at once; its wall time."""
    graph = build_graph(saver, seed, tool_calls)
    rng = random.Random(seed + 1)

    async def one(t: int) -> None:
        cfg = {"configurable": {"thread_id": f"thread-{t}"}}
        for _ in range(turns):
            await graph.ainvoke(_user_turn(rng), cfg)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(t) for t in range(threads)))
    return time.perf_counter() - t0


async def _replay(saver: Any, calls: list[Call], timings: dict[str, list[float]]) -> None:
    clock = time.perf_counter
    for kind, args in calls:
        t0 = clock()
        if kind == "put":
            await saver.aput(*args)
        else:
            await saver.aput_writes(*args)
        timings[kind].append(clock() - t0)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


Openers = dict[str, Callable[[Path], Any]]


async def _measure(
    openers: Openers, workload: list[list[Call]], base: Path, shape: tuple[int, int, int, int],
    first: int,
) -> dict[str, dict[str, Any]]:
    """Every phase on every saver. The sequential calls and the reads alternate
    between the savers call by call, so that both meet the same disk (on a
    shared machine an fdatasync costs 0.2 ms one second and 4 ms the next);
    the concurrent phases run one saver after the other, ``first`` first."""
    names = list(openers)
    out: dict[str, dict[str, Any]] = {n: {"saver": n} for n in names}
    timings: dict[str, dict[str, list[float]]] = {n: {"put": [], "writes": []} for n in names}
    gets: dict[str, float] = dict.fromkeys(names, 0.0)
    configs = []
    for t, calls in enumerate(workload):
        configs.append({"configurable": {"thread_id": f"thread-{t}", "checkpoint_ns": ""}})
        ids = [a[1]["id"] for k, a in calls if k == "put"]
        configs += [
            {"configurable": {"thread_id": f"thread-{t}", "checkpoint_ns": "",
                              "checkpoint_id": cid}}
            for cid in ids[::5]
        ]
    # Where a sequential put's time goes, in the same loop: the same calls on a
    # JournalSaver called in this thread (no worker thread), and a bare
    # fdatasync after a 4 KiB overwrite in a preallocated file (the floor of
    # any durable write on this disk).
    direct: list[float] = []
    floor: list[float] = []
    base.mkdir(parents=True, exist_ok=True)
    probe = os.open(base / "fdatasync-probe", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(probe, bytes(4 << 20))
    os.fsync(probe)
    block = os.urandom(4096)
    async with contextlib.AsyncExitStack() as stack:
        savers = {n: await stack.enter_async_context(openers[n](base / f"{n}-seq"))
                  for n in names}
        sync_saver = await stack.enter_async_context(_journal_opener(base / "direct"))
        clock = time.perf_counter
        for calls in workload:
            for kind, args in calls:
                for n in names:
                    t0 = clock()
                    if kind == "put":
                        await savers[n].aput(*args)
                    else:
                        await savers[n].aput_writes(*args)
                    timings[n][kind].append(clock() - t0)
                if kind != "put":
                    sync_saver.put_writes(*args)
                    continue
                t0 = clock()
                sync_saver.put(*args)
                direct.append(clock() - t0)
                t0 = clock()
                os.pwrite(probe, block, (len(floor) % 1024) * 4096)
                os.fdatasync(probe)
                floor.append(clock() - t0)
        for cfg in configs:
            for n in names:
                t0 = clock()
                assert await savers[n].aget_tuple(cfg) is not None
                gets[n] += clock() - t0
    for n in names:
        o, tm = out[n], timings[n]
        o["puts"] = len(tm["put"])
        o["puts_per_s"] = len(tm["put"]) / sum(tm["put"])
        o["put_median_ms"] = statistics.median(tm["put"]) * 1e3
        o["writes_per_s"] = len(tm["writes"]) / max(sum(tm["writes"]), 1e-9)
        o["gets_per_s"] = len(configs) / gets[n]
        o["bytes"] = _dir_bytes(base / f"{n}-seq")
    os.close(probe)
    out["JournalSaver"]["direct_put_median_ms"] = statistics.median(direct) * 1e3
    out["JournalSaver"]["fdatasync_median_ms"] = statistics.median(floor) * 1e3
    out["JournalSaver"]["pruned_bytes"] = _pruned_size(base / "JournalSaver-seq", len(workload))
    order = names[first:] + names[:first]
    for n in order:
        conc: dict[str, list[float]] = {"put": [], "writes": []}
        async with openers[n](base / f"{n}-conc") as saver:
            t0 = time.perf_counter()
            await asyncio.gather(*(_replay(saver, calls, conc) for calls in workload))
            wall = time.perf_counter() - t0
        out[n]["concurrent_calls_per_s"] = (len(conc["put"]) + len(conc["writes"])) / wall
        out[n]["concurrent_puts_per_s"] = len(conc["put"]) / wall
    for n in order:
        # The graph itself, every thread at once (its puts are those recorded).
        async with openers[n](base / f"{n}-graph") as saver:
            wall = await _run_graph(saver, *shape)
        out[n]["graph_puts_per_s"] = out[n]["puts"] / wall
    return out


def _pruned_size(path: Path, threads: int) -> int:
    """The journal's bytes after ``prune(keep_latest)`` of every thread and a
    compaction (AsyncSqliteSaver has no ``prune``)."""
    from datetime import timedelta

    from journal.integrations.langgraph import JournalSaver

    with JournalSaver(path) as saver:
        saver.prune([f"thread-{t}" for t in range(threads)])
        saver.store.journal.seal_active()
        saver.store.compact(retain=timedelta(0))
    return _dir_bytes(path)


def _journal_opener(path: Path) -> Any:
    from journal.integrations.langgraph import JournalSaver

    return JournalSaver(path, durability="fsync")


class _SqliteOpener:
    """AsyncSqliteSaver on a fresh file, WAL mode, synchronous=FULL (durable commits)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: Any = None

    async def __aenter__(self) -> Any:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        self.path.mkdir(parents=True)
        self.conn = await aiosqlite.connect(str(self.path / "checkpoints.db"))
        saver = AsyncSqliteSaver(self.conn)
        await saver.setup()
        await self.conn.execute("PRAGMA synchronous=FULL")
        return saver

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()


def run_langgraph_bench(args: argparse.Namespace) -> int:
    """Run the LangGraph phase; print the figures (and write ``--json``); exit code."""
    try:
        import aiosqlite  # noqa: F401
        import langgraph.checkpoint.sqlite.aio
        import langgraph.graph  # noqa: F401
    except ImportError as exc:
        print(
            f"agcx bench --langgraph: skipped, LangGraph is not installed ({exc}); "
            'install it with: pip install "agcx[langgraph]"',
            file=sys.stderr,
        )
        return 0
    quick = bool(getattr(args, "quick", False))
    threads, turns, tools = (4, 2, 3) if quick else (12, 4, 4)
    seed = int(getattr(args, "seed", 0) or 0)
    repeat = max(1, int(getattr(args, "repeat", 1) or 1))
    parent = Path(args.dir) if getattr(args, "dir", None) else Path.cwd()
    parent.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=".agcx-bench-lg-", dir=parent))
    try:
        workload = record_workload(threads, turns, tools, seed)
        n_puts = sum(1 for calls in workload for k, _ in calls if k == "put")
        n_writes = sum(1 for calls in workload for k, _ in calls if k == "writes")
        print(
            f"langgraph workload: {threads} threads x {turns} turns x {tools} tool calls: "
            f"{n_puts} puts, {n_writes} put_writes (load avg {os.getloadavg()[0]:.2f})",
            file=sys.stderr,
        )
        openers: Openers = {"JournalSaver": _journal_opener, "AsyncSqliteSaver": _SqliteOpener}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in openers}
        for r in range(repeat):
            got = asyncio.run(
                _measure(openers, workload, base / str(r), (threads, turns, tools, seed), r % 2)
            )
            for name, figures in got.items():
                runs[name].append(figures)
        result = {name: _median(rs) for name, rs in runs.items()}
    finally:
        if not getattr(args, "keep", False):
            shutil.rmtree(base, ignore_errors=True)
    j, s = result["JournalSaver"], result["AsyncSqliteSaver"]
    ratios = {
        key: j[key] / s[key]
        for key in ("puts_per_s", "writes_per_s", "gets_per_s", "concurrent_calls_per_s",
                    "concurrent_puts_per_s", "graph_puts_per_s", "bytes")
    }
    rows = [
        ("durable puts/s (sequential)", "puts_per_s", "{:,.0f}"),
        ("put median ms", "put_median_ms", "{:.2f}"),
        ("put_writes/s (sequential)", "writes_per_s", "{:,.0f}"),
        ("get_tuple/s", "gets_per_s", "{:,.0f}"),
        ("calls/s, all threads at once", "concurrent_calls_per_s", "{:,.0f}"),
        ("puts/s, all threads at once", "concurrent_puts_per_s", "{:,.0f}"),
        ("puts/s, the graph run (ainvoke)", "graph_puts_per_s", "{:,.0f}"),
        ("size on disk (bytes)", "bytes", "{:,.0f}"),
    ]
    print(f"{'figure':32} {'JournalSaver':>14} {'AsyncSqliteSaver':>17} {'ratio':>7}")
    for label, key, fmt in rows:
        ratio = j[key] / s[key] if s[key] else float("nan")
        print(f"{label:32} {fmt.format(j[key]):>14} {fmt.format(s[key]):>17} {ratio:7.2f}")
    print(f"one sequential put, medians: fdatasync alone {j['fdatasync_median_ms']:.2f} ms, "
          f"JournalSaver.put in the caller's thread {j['direct_put_median_ms']:.2f} ms, "
          f"aput {j['put_median_ms']:.2f} ms, AsyncSqliteSaver.aput {s['put_median_ms']:.2f} ms")
    print(f"JournalSaver after prune(keep_latest) of every thread and a compaction: "
          f"{j['pruned_bytes']:,.0f} bytes")
    size_ok = ratios["bytes"] <= 0.5
    for label, key in (("one graph at a time", "puts_per_s"),
                       ("all threads at once", "concurrent_puts_per_s"),
                       ("the graph run", "graph_puts_per_s")):
        ok = ratios[key] >= 1.5
        print(f"target durable puts/s >= 1.5x, {label}: {'PASS' if ok else 'MISS'} "
              f"({ratios[key]:.2f}x)")
    print(f"target size <= 0.5x: {'PASS' if size_ok else 'MISS'} ({ratios['bytes']:.2f}x)")
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps({"langgraph": result, "ratios": ratios}, indent=2))
    return 0


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"saver": runs[0]["saver"], "puts": runs[0]["puts"]}
    for key in runs[0]:
        if key not in out:
            out[key] = statistics.median(r[key] for r in runs)
    return out
