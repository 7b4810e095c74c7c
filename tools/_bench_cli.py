"""``agcx bench --cli``: the command line at the size of a real history.

Builds (once, kept under ``--dir``) a journal of 10,000 sessions holding one
session of 5,000 messages, and a journal of 1,000,000 events, then runs each
command as a user would: a fresh ``python -m tools.cli`` process, stdout a
pipe, timed from start to exit (median of ``--repeat``, at least 5). Every
figure is shown with its ratio to a bare interpreter start (``python -c
pass``) timed in the same run, and with the issue's target (PASS/MISS).

The journals are written with the store's own API at ``durability="none"``:
sessions by ``save_session``, the million events as ``SessionTouched`` and
``TagsChanged`` batches through :meth:`journal.Journal.append_many`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

__all__ = ["build_journals", "run_cli_bench"]

SESSIONS = 10_000
EVENTS = 1_000_000
LONG_MESSAGES = 5_000
_T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_TAGS = ("bug", "feature", "refactor", "docs", "ci", "perf")


def _sid(n: int) -> UUID:
    # Deterministic ids that look random (ids sort apart from time).
    return UUID(int=(n * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128) | (4 << 76))


def _long_conversation(sid: UUID, n: int) -> Any:
    from journal import (
        ConversationSnapshot,
        FunctionCall,
        FunctionCallOutput,
        InputText,
        Message,
        MessageSnapshot,
        OutputText,
    )

    msgs = []
    clock = _T0
    turn = 0
    for k in range(n):
        clock += timedelta(seconds=7)
        kind = k % 4
        if kind == 0:
            turn += 1
            item: Any = Message(role="user", content=(InputText(f"step {turn}: run the tests"),))
        elif kind == 1:
            args = json.dumps({"command": ["pytest", "-q", f"tests/test_{turn % 40}.py"]})
            item = FunctionCall(name="shell", arguments=args, call_id=f"call_{k}")
        elif kind == 2:
            out = "\n".join(f"tests/test_{turn % 40}.py::test_{i} PASSED" for i in range(40))
            item = FunctionCallOutput(call_id=f"call_{k - 1}", output=out)
        else:
            item = Message(role="assistant", content=(OutputText(f"Turn {turn}: all green."),))
        msgs.append(MessageSnapshot(item=item, timestamp=clock, turn_index=turn))
    return ConversationSnapshot(sid, tuple(msgs))


def _fill_sessions(root: Path, sessions: int, long_messages: int) -> UUID:
    from journal import (
        ConversationSnapshot,
        InputText,
        Message,
        MessageSnapshot,
        OperatingMode,
        SessionMetadata,
        SessionState,
        SessionStore,
    )

    state = SessionState()
    modes = list(OperatingMode)
    with SessionStore.open(root, durability="none") as store:
        for n in range(sessions):
            sid = _sid(n + 1)
            when = _T0 + timedelta(minutes=n)
            msg = MessageSnapshot(
                item=Message(role="user", content=(InputText(f"task {n}"),)),
                timestamp=when,
                turn_index=1,
            )
            meta = SessionMetadata(
                id=sid,
                title=f"session {n}: {_TAGS[n % len(_TAGS)]} work",
                created_at=when,
                updated_at=when,
                last_accessed=when,
                message_count=1,
                turn_count=1,
                current_mode=modes[n % len(modes)],
                tags=(_TAGS[n % len(_TAGS)],),
                is_favorite=n % 97 == 0,
            )
            store.save_session(sid, meta, ConversationSnapshot(sid, (msg,)), state)
        long_id = _sid(0)
        conv = _long_conversation(long_id, long_messages)
        when = _T0 + timedelta(minutes=sessions)
        meta = SessionMetadata(
            id=long_id,
            title="the long one",
            created_at=_T0,
            updated_at=when,
            last_accessed=when,
            message_count=len(conv.messages),
            turn_count=long_messages // 4,
        )
        store.save_session(long_id, meta, conv, state)
    return long_id


def _fill_events(root: Path, events: int, sessions: int) -> None:
    from journal import Entry, EventType, Journal

    with Journal.open(root, durability="none") as j:
        left = events - j.last_seq
        batch: list[Entry] = []
        for k in range(left):
            sid = _sid(1 + k % sessions)
            if k % 5 == 4:
                batch.append(
                    Entry(EventType.TAGS_CHANGED, {"v": 1, "add": ["seen"], "rm": []}, sid)
                )
            else:
                at = int((_T0 + timedelta(seconds=k)).timestamp() * 1e6)  # microseconds
                batch.append(Entry(EventType.SESSION_TOUCHED, {"v": 1, "at": at}, sid))
            if len(batch) == 5000:
                j.append_many(batch)
                batch = []
        if batch:
            j.append_many(batch)


def build_journals(base: Path, *, sessions: int = SESSIONS, events: int = EVENTS) -> dict[str, Any]:
    """Make (or reuse) the two journals under ``base``; return their roots and ids."""
    base.mkdir(parents=True, exist_ok=True)
    facts_path = base / f"facts-{sessions}-{events}.json"
    from journal import SessionStore

    if facts_path.exists():
        facts: dict[str, Any] = json.loads(facts_path.read_text())
        # Kept from an earlier run: a writable open brings the projection
        # snapshots up to this build (read-only commands cannot save them).
        for key in ("sessions", "events"):
            with SessionStore.open(facts[key], durability="none"):
                pass
        return facts

    small = base / f"sessions-{sessions}"
    big = base / f"events-{events}"
    long_id = _fill_sessions(small, sessions, LONG_MESSAGES)
    _fill_sessions(big, min(sessions, 1000), 4)
    _fill_events(big, events, min(sessions, 1000))
    # Let the projections catch up once and keep their snapshot, as a working store does.
    with SessionStore.open(big, durability="none"):
        pass
    facts = {"sessions": str(small), "events": str(big), "long": long_id.hex}
    facts_path.write_text(json.dumps(facts))
    return facts


def _cpu_of_children() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _timed(
    cmd: Sequence[str], env: dict[str, str], *, lines: int | None = None
) -> tuple[float, float]:
    """Seconds from start to exit (or to ``lines`` lines read, then the pipe
    closed), and the CPU seconds the child used (user + system)."""
    cpu = _cpu_of_children()
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert p.stdout is not None
    if lines is None:
        for _ in iter(lambda: p.stdout.read(1 << 16), b""):  # type: ignore[union-attr]
            pass
        p.wait()
        elapsed = time.perf_counter() - t
    else:
        for _ in range(lines):
            if not p.stdout.readline():
                break
        elapsed = time.perf_counter() - t
        p.stdout.close()
        p.wait()
    if p.returncode not in (0, None) and lines is None:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}")
    return elapsed, _cpu_of_children() - cpu


def _count_lines(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, int]:
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert p.stdout is not None
    n = 0
    for chunk in iter(lambda: p.stdout.read(1 << 16), b""):  # type: ignore[union-attr]
        n += chunk.count(b"\n")
    p.wait()
    return time.perf_counter() - t, n


def run_cli_bench(args: argparse.Namespace) -> int:
    """Build or reuse the journals, time the commands, print the figures."""
    base = Path(args.dir or ".").resolve() / "agcx-bench-cli"
    repeat = max(5, args.repeat or 1)
    started = time.perf_counter()
    facts = build_journals(base)
    built = time.perf_counter() - started
    # The commands run from bytecode, as an installed package's do (pip compiles
    # it): without it each start compiles every module it imports again.
    import compileall

    root_dir = str(Path(__file__).resolve().parents[1])
    for pkg in ("journal", "projections", "tools"):
        compileall.compile_dir(os.path.join(root_dir, pkg), quiet=1)
    env = dict(os.environ)
    env.pop("AGCX_PAGER", None)
    env["PAGER"] = "cat"
    env["PYTHONPATH"] = os.pathsep.join([root_dir, env.get("PYTHONPATH", "")])
    py = sys.executable
    agcx = [py, "-m", "tools.cli"]
    small, big, long_id = facts["sessions"], facts["events"], facts["long"]

    def median(cmd: Sequence[str], *, lines: int | None = None) -> tuple[float, float]:
        runs = [_timed(cmd, env, lines=lines) for _ in range(repeat)]
        return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)

    bare, bare_cpu = median([py, "-c", "pass"])
    rows: list[tuple[str, float, float, str, bool | None]] = []

    def row(
        name: str, timed: tuple[float, float], limit: float | None, *, ratio: bool = False
    ) -> None:
        wall, cpu = timed
        if limit is None:
            rows.append((name, wall, cpu, "", None))
        elif ratio:
            rows.append((name, wall, cpu, f"<= {limit:g}x bare", wall <= limit * bare))
        else:
            rows.append((name, wall, cpu, f"<= {limit * 1000:.0f} ms", wall <= limit))

    row("agcx --help", median([*agcx, "--help"]), 2.5, ratio=True)
    demo = base / "demo"
    if not (demo / "MANIFEST").exists():
        from journal import SessionStore
        from tools._demo import fill

        with SessionStore.open(demo, durability="none") as store:
            fill(store)
    row("agcx ls (demo, 3 sessions)", median([*agcx, "--root", str(demo), "ls"]), 2.5, ratio=True)
    for name, cmd, limit in (
        ("agcx ls (10,000 sessions)", ["ls"], 0.150),
        ("agcx ls --all (10,000)", ["ls", "--all"], 0.600),
        ("agcx --json ls --all (10,000)", ["--json", "ls", "--all"], 0.400),
        ("agcx ls --tag bug --mode plan (10,000)", ["ls", "--tag", "bug", "--mode", "plan"], None),
    ):
        row(name, median([*agcx, "--root", small, *cmd]), limit)
    show = [*agcx, "--root", small, "show", long_id[:8]]
    row("agcx show (5,000 messages), first screen", median(show, lines=60), 0.400)
    row("agcx show (5,000 messages), whole", median(show), None)
    row("agcx show --last 20 (5,000 messages)", median([*show, "--last", "20"]), None)
    log = [*agcx, "--root", big, "log"]
    row("agcx log --last 20 (1,000,000 events)", median([*log, "--last", "20"]), 0.150)
    row(
        "agcx log --last 20 --type TagsChanged (1M)",
        median([*log, "--last", "20", "--type", "TagsChanged"]),
        None,
    )
    row("agcx log (1M), first line", median(log, lines=1), None)
    sid = _sid(1).hex[:8]
    row("agcx log --session S --last 5 (1M)", median([*log, "--session", sid, "--last", "5"]), None)
    secs, n = _count_lines([*log, "--until", "seq:300000"], env)
    rate = n / secs

    out = sys.stdout
    out.write(
        f"agcx bench --cli: medians of {repeat} runs, {SESSIONS:,} sessions / "
        f"{EVENTS:,} events (journals in {base}, ready in {built:.1f} s)\n"
        "wall: start to exit (ratio: to the bare interpreter's wall); cpu: user + system\n"
    )
    out.write(
        f"{'':<46} {'wall':>8}    {'ratio':>6}  {'cpu':>8}  {'ratio':>6}\n"
        f"{'bare interpreter (python -c pass)':<46} {bare * 1000:8.1f} ms {1:6.2f}x "
        f"{bare_cpu * 1000:8.1f} ms {1:6.2f}x\n"
    )
    for name, wall, cpu, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        out.write(
            f"{name:<46} {wall * 1000:8.1f} ms {wall / bare:6.2f}x {cpu * 1000:8.1f} ms "
            f"{cpu / bare_cpu if bare_cpu else 0:6.2f}x  {target:<14} {verdict}\n"
        )
    verdict = "PASS" if rate >= 50_000 else "MISS"
    out.write(
        f"{'agcx log to a pipe (300,000 lines)':<46} {rate:8,.0f} lines/s "
        f"({secs:.2f} s)  >= 50,000/s {verdict}\n"
    )
    return 0
