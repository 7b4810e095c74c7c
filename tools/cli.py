"""The ``agcx`` command line: replay, audit and point-in-time recovery.

Read commands open the store read-only: they take no lock, write nothing and
never block the agents appending beside them. Commands that write (import,
compact, purge; recover writes only its new target) interleave with the
agents' commits through the journal's commit lock.

Exit codes: 0 ok; 1 a problem was found (damage, a replay mismatch, files an
import could not read, skipped bytes in a salvage) or the journal refused
(corrupt, busy, not a journal); 2 the command line is wrong (bad option, bad
WHEN, a SESSION that names no session or several, a point before the horizon);
130 interrupted by Ctrl-C (143 by SIGTERM). A closed pager or reader (`agcx log |
head`) ends the command quietly with 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from tools import bench
from tools._when import UsageError, parse_duration, parse_when, when_help

# Every command imports what it uses when it runs (the store, rich, the bench, the
# legacy reader): `agcx --help` starts as fast as the interpreter does.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from journal import (
        CheckpointMetadata,
        HistoryEntry,
        Journal,
        JournalError,
        PointInTimeView,
        SessionMetadata,
        SessionStore,
    )
    from journal._replicate import ReplicationStatistics, Replicator
    from tools._pager import Output
    from tools._verify import VerifyReport

__all__ = ["main", "run"]

DEFAULT_ROOT = os.path.join("~", ".agcodex", "history")
EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
_FOLLOW_POLL = 0.2

_EPILOG = f"""\
examples:
  agcx demo                              fill a temporary journal and tour it
  agcx ls                                the newest 50 sessions (-n N, --all for more)
  agcx ls --tag bug                      sessions tagged "bug"
  agcx show 3fa2                         a session by id prefix: metadata and conversation
  agcx log --session 3fa2 --since "2h ago"
  agcx log --follow                      events as the agents append them (Ctrl-C stops)
  agcx ls --at 2024-05-01T10:42:00+02:00 the sessions as they were at that time
  agcx verify                            check every record, checksum and payload
  agcx recover --at seq:1200 --out ~/restored
  agcx recover --salvage --out ~/salvaged
  agcx --json stats                      (or: agcx stats --json)
  source <(agcx completion bash)         Tab-complete commands, options, session ids

{textwrap.fill(when_help + ".", 88)}

The journal is --root, else $AGCX_ROOT, else {DEFAULT_ROOT}.
Tables show local times; --json prints one JSON document on stdout (log --follow:
one per line) with times in RFC 3339. On a terminal, long output goes through
$AGCX_PAGER, else $PAGER, else `less -FRX` (--no-pager: never).
Ctrl-C stops any command: exit code 130, one line on stderr; nothing is left
half-written (see recover, import and compact --help for what each leaves).

exit codes:
  0  ok
  1  a problem was found (damage, a replay mismatch, unreadable legacy files,
     bytes skipped by a salvage) or the journal refused (corrupt, busy, not a journal)
  2  the command line is wrong: a bad option, a bad WHEN (no zone, in the future,
     before the compaction horizon), a SESSION prefix that names no session or several
  130  interrupted by Ctrl-C (143: by SIGTERM); `log --follow` ends with 0
"""


# -- plumbing -----------------------------------------------------------------------------


def _out(file: Any = None) -> Console:
    """A rich console on ``file`` (default stdout) for the short, one-screen views."""
    from rich.console import Console

    return Console(file=file, highlight=False, soft_wrap=False)


def _paged(args: argparse.Namespace) -> contextlib.AbstractContextManager[Output]:
    """Where a command writes: through the pager on a terminal (see tools/_pager.py)."""
    from tools._pager import paged

    return paged(enabled=not getattr(args, "no_pager", False))


def _root(args: argparse.Namespace) -> str:
    raw = args.root or os.environ.get("AGCX_ROOT") or DEFAULT_ROOT
    return os.path.abspath(os.path.expanduser(raw))


def _not_a_journal(args: argparse.Namespace, root: str) -> JournalError:
    """Why ``root`` is no journal, and what to do, for where the path came from."""
    from journal import JournalError

    if not os.path.exists(root):
        what = f"{root} does not exist, so it is not an agcx journal"
    elif not os.path.isdir(root):
        what = f"{root} is not a directory, so not an agcx journal"
    else:
        what = f"{root} is not an agcx journal (no MANIFEST)"
    if args.root:
        return JournalError(f"{what}: check --root")
    if os.environ.get("AGCX_ROOT"):
        return JournalError(f"{what}: check $AGCX_ROOT (or give --root)")
    return JournalError(f"{what}: give --root or set AGCX_ROOT")


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False) or getattr(args, "json_global", False))


@contextlib.contextmanager
def _store(args: argparse.Namespace, *, readonly: bool = True) -> Iterator[SessionStore]:
    from journal import SessionStore

    root = _root(args)
    if readonly and not os.path.isfile(os.path.join(root, "MANIFEST")):
        raise _not_a_journal(args, root)
    store = SessionStore.open(root, readonly=readonly)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def _journal(args: argparse.Namespace) -> Iterator[Journal]:
    from journal import Journal

    root = _root(args)
    if not os.path.isfile(os.path.join(root, "MANIFEST")):
        raise _not_a_journal(args, root)
    with Journal.open(root, readonly=True) as j:
        yield j


def _view(store: SessionStore, when: str | None) -> SessionStore | PointInTimeView:
    if when is None:
        return store
    return store.at(parse_when(when))


def _seq_of(q: SessionStore | PointInTimeView) -> int | None:
    from journal import PointInTimeView

    return q.seq if isinstance(q, PointInTimeView) else None


def _resolve_session(
    q: SessionStore | PointInTimeView, text: str, *, at: bool = False
) -> SessionMetadata:
    """The one live session whose id starts with ``text`` (dashes ignored)."""
    prefix = text.strip().lower().replace("-", "")
    if not prefix or any(c not in "0123456789abcdef" for c in prefix) or len(prefix) > 32:
        raise UsageError(f"SESSION {text!r} is not a session id or a prefix of one (hex digits)")
    page = q.find_sessions(id_prefix=prefix, limit=5)
    where = " at that point" if at else ""
    if not page.total:
        raise UsageError(f"no session{where} has an id starting with {text!r} (see `agcx ls`)")
    if page.total > 1:
        ids = ", ".join(m.id.hex[:12] for m in page.sessions)
        raise UsageError(
            f"{text!r} matches {page.total} sessions{where} ({ids}): give more characters"
        )
    return page.sessions[0]


def _resolve_checkpoint(meta: SessionMetadata, text: str) -> CheckpointMetadata:
    from tools._render import short_id

    prefix = text.strip().lower().replace("-", "")
    matches = [c for c in meta.checkpoints if c.id.hex.startswith(prefix)] if prefix else []
    if not matches:
        raise UsageError(
            f"session {short_id(meta.id)} has no checkpoint starting with {text!r}"
            + (
                f" (it has {', '.join(c.id.hex[:8] for c in meta.checkpoints)})"
                if meta.checkpoints
                else " (it has none)"
            )
        )
    if len(matches) > 1:
        raise UsageError(f"{text!r} matches {len(matches)} checkpoints: give more characters")
    return matches[0]


# -- info ---------------------------------------------------------------------------------


def _projection_state(j: Journal) -> dict[str, Any]:
    """Whether the projection snapshots exist and how far behind the log they are."""
    from projections import ProjectionRunner
    from tools._replay import fresh_projections

    snap_dir = os.path.join(j.root, "projections")
    files: dict[str, int | None] = {}
    for p in fresh_projections():
        path = os.path.join(snap_dir, f"{p.name}.snap")
        files[f"{p.name}.snap"] = os.path.getsize(path) if os.path.isfile(path) else None
    runner = ProjectionRunner(j, fresh_projections(), snap_dir=snap_dir)
    if runner.restore():
        behind = sum(1 for _ in j.scan(from_seq=runner.seq + 1))
        state = "current" if behind == 0 else f"{behind} events behind (replayed on open)"
        return {"state": state, "seq": runner.seq, "behind": behind, "files": files}
    if any(v is not None for v in files.values()):
        state = "unusable (stale, damaged or from another horizon): rebuilt on the next open"
    else:
        state = "none: the projections are built from the log on open"
    return {"state": state, "seq": None, "behind": None, "files": files}


def cmd_info(args: argparse.Namespace) -> int:
    from rich import box
    from rich.table import Table

    from tools._lines import fmt_bytes, fmt_ns, print_json

    with _journal(args) as j:
        st = j.statistics()
        m = j.manifest
        segs: list[dict[str, Any]] = []
        sealed_records = sum(s.count for s in m.segments if s.sealed)
        sealed_bytes = sum(s.length for s in m.segments if s.sealed)
        for s in m.segments:
            if s.sealed:
                segs.append(
                    {
                        "name": s.name,
                        "sealed": True,
                        "records": s.count,
                        "bytes": s.length,
                        "first_seq": s.first_seq if s.count else None,
                        "last_seq": s.last_seq if s.count else None,
                        "first_ts": _iso(s.first_ts),
                        "last_ts": _iso(s.last_ts),
                    }
                )
            else:
                count = st.records - sealed_records
                first = next(iter(j.scan(from_seq=s.base_seq)), None) if count else None
                segs.append(
                    {
                        "name": s.name,
                        "sealed": False,
                        "records": count,
                        "bytes": st.bytes - sealed_bytes,
                        "first_seq": first.seq if first else None,
                        "last_seq": st.last_seq if count else None,
                        "first_ts": _iso(first.ts_ns) if first else None,
                        "last_ts": _iso(st.last_ts_ns) if count else None,
                    }
                )
        proj = _projection_state(j)
        doc = {
            "root": j.root,
            "journal_id": st.journal_id,
            "segments": segs,
            "records": st.records,
            "bytes": st.bytes,
            "first_seq": st.first_seq,
            "last_seq": st.last_seq,
            "first_ts": _iso(st.first_ts_ns),
            "last_ts": _iso(st.last_ts_ns),
            "horizon": {"seq": st.horizon_seq, "ts": _iso(st.horizon_ts_ns)},
            "projections": proj,
        }
    if _json(args):
        print_json(doc)
        return EXIT_OK
    out = _out()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("journal", f"{doc['root']}  (id {st.journal_id[:12]})")
    facts.add_row(
        "records",
        f"{st.records:,} in {_plural(len(segs), 'segment')} ({st.sealed_segments} sealed), "
        f"{fmt_bytes(st.bytes)}",
    )
    facts.add_row("seq", f"{st.first_seq} .. {st.last_seq}" if st.records else "none yet")
    facts.add_row("time", f"{fmt_ns(st.first_ts_ns)} .. {fmt_ns(st.last_ts_ns)}")
    facts.add_row(
        "horizon",
        f"seq {st.horizon_seq} ({fmt_ns(st.horizon_ts_ns)}): earlier points are compacted"
        if st.horizon_seq
        else "none (nothing compacted: every point in time is recoverable)",
    )
    snap = proj["state"] + (f", snapshot at seq {proj['seq']}" if proj["seq"] is not None else "")
    facts.add_row("projections", snap)
    out.print(facts)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for col, just in (
        ("segment", "left"),
        ("state", "left"),
        ("seq", "left"),
        ("records", "right"),
        ("bytes", "right"),
    ):
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for row in segs:
        seqs = f"{row['first_seq']}..{row['last_seq']}" if row["records"] else "-"
        t.add_row(
            row["name"],
            "sealed" if row["sealed"] else "active",
            seqs,
            f"{row['records']:,}",
            fmt_bytes(row["bytes"]),
        )
    out.print()
    out.print(t)
    return EXIT_OK


def _iso(ns: int) -> str | None:
    from journal._log import from_ns

    return from_ns(ns).isoformat() if ns else None


# -- ls, show, stats, export --------------------------------------------------------------


def cmd_ls(args: argparse.Namespace) -> int:
    from tools._lines import session_lines, stream_json_list

    since = None
    if args.since is not None:
        w = parse_when(args.since)
        if isinstance(w, int):
            raise UsageError("ls --since takes a time (e.g. '2d ago'), not seq:N")
        since = w
    mode = None if args.mode is None else _mode(args.mode)
    limit = None if args.all else args.n
    with _store(args) as store:
        q = _view(store, args.at)
        page = q.find_sessions(
            limit=limit,
            query=args.search,
            tag=args.tag,
            favorites=args.favorites,
            since=since,
            mode=mode,
            kind=args.kind,
        )
        seq = _seq_of(q)
    metas, total = page.sessions, page.total
    with _paged(args) as out:
        if _json(args):
            head = {"at_seq": seq, "total": total, "shown": len(metas)}
            stream_json_list(out, head, "sessions", metas)
            return EXIT_OK
        if not metas:
            if seq == 0 and args.at:
                out.write(f"no sessions at {args.at}: that is before the journal's first event\n")
            else:
                out.write("no sessions" + (f" at seq {seq}" if seq is not None else "") + "\n")
            return EXIT_OK
        title = f"as of seq {seq}" if seq is not None else None
        if _fits_screen(len(metas) + 4):
            from tools._render import sessions_table

            _out(out).print(sessions_table(metas, title))
        else:
            if title:
                out.write(title + "\n")
            session_lines(out, metas, width=_line_width())
        if total > len(metas):
            more = total - len(metas)
            out.write(
                f"… {more:,} more (newest {len(metas):,} of {total:,} shown): "
                "-n N shows N, --all shows every one\n"
            )
    return EXIT_OK


def _mode(value: str) -> Any:
    from journal import OperatingMode

    try:
        return OperatingMode(value.lower())
    except ValueError:
        modes = ", ".join(m.value for m in OperatingMode)
        raise UsageError(f"--mode {value!r}: use one of {modes}") from None


def _fits_screen(lines: int) -> bool:
    """Whether ``lines`` fit on the terminal stdout is (never when it is not one)."""
    if not sys.stdout.isatty():
        return False
    import shutil

    return lines <= shutil.get_terminal_size().lines - 1


def _line_width() -> int | None:
    """Where plain lines are cut: the terminal's width, or nowhere when piped."""
    if not sys.stdout.isatty():
        return None
    import shutil

    return shutil.get_terminal_size().columns


def cmd_show(args: argparse.Namespace) -> int:
    with _store(args) as store:
        q = _view(store, args.at)
        found = _resolve_session(q, args.session, at=args.at is not None)
        meta, conv, state = q.load_session(found.id)
        origin = q.fork_origin(found.id)
        checkpoint = None
        if args.checkpoint is not None:
            checkpoint = _resolve_checkpoint(meta, args.checkpoint)
            conv, state = q.load_checkpoint(meta.id, checkpoint.id)
        seq = _seq_of(q)
    messages = conv.messages if args.last is None else conv.messages[-args.last :]
    if _json(args):
        from tools._lines import jsonable, print_json

        forked = (
            None
            if origin is None
            else {"session": str(origin[0]), "at_message": origin[1], "seq": origin[2]}
        )
        doc = jsonable(
            {
                "at_seq": seq,
                "metadata": meta,
                "forked_from": forked,
                "checkpoint": checkpoint,
                "conversation": conv,
            }
        )
        if args.last is not None:
            doc["conversation"]["messages"] = doc["conversation"]["messages"][-args.last :]
        doc["state"] = jsonable(state)
        with _paged(args) as out:
            print_json(doc, out)
        return EXIT_OK
    from tools._render import render_messages

    with _paged(args) as stream:
        console = _out(stream)
        _show_head(console, meta, seq, origin)
        title = (
            f"checkpoint {checkpoint.id.hex[:8]} {checkpoint.name}"
            if checkpoint
            else "conversation"
        )
        skipped = len(conv.messages) - len(messages) if args.last is not None else 0
        if skipped:
            title += f" (last {len(messages)} of {len(conv.messages)} messages)"
        console.rule(title)
        for block in render_messages(messages, full=args.full):
            console.print(block)
    return EXIT_OK


def _show_head(
    out: Console, meta: SessionMetadata, seq: int | None, origin: tuple[Any, int, int] | None
) -> None:
    from rich.table import Table
    from rich.text import Text

    from tools._lines import fmt_bytes, fmt_time

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("session", Text(f"{'★ ' if meta.is_favorite else ''}{meta.title}", style="bold"))
    head.add_row("id", str(meta.id))
    head.add_row("created", fmt_time(meta.created_at))
    head.add_row("updated", fmt_time(meta.updated_at))
    head.add_row("accessed", fmt_time(meta.last_accessed))
    head.add_row(
        "mode", f"{meta.current_mode.value}   model {meta.model or '-'}   turns {meta.turn_count}"
    )
    head.add_row("tags", ", ".join(meta.tags) or "-")
    if origin is not None:
        head.add_row("forked from", f"{origin[0]} at message {origin[1]} (seq {origin[2]})")
    head.add_row(
        "stored",
        f"{meta.message_count} messages, {fmt_bytes(meta.file_size)} "
        f"(compression ×{meta.compression_ratio:g})",
    )
    if seq is not None:
        head.add_row("as of", f"seq {seq}")
    for c in meta.checkpoints:
        head.add_row(
            "checkpoint",
            f"{c.id.hex[:8]}  {c.name or '(unnamed)'}  {fmt_time(c.created_at)}  "
            f"at message {c.message_index}",
        )
    out.print(head)


def cmd_stats(args: argparse.Namespace) -> int:
    from rich import box
    from rich.table import Table

    from tools._lines import fmt_bytes, fmt_time, print_json

    with _store(args) as store:
        st = store.statistics()
    if _json(args):
        print_json(st)
        return EXIT_OK
    out = _out()
    g = Table.grid(padding=(0, 2))
    g.add_column(style="bold")
    g.add_column()
    g.add_row(
        "sessions",
        f"{st.total_sessions:,} live, {_plural(st.total_checkpoints, 'checkpoint')}",
    )
    if st.graph_threads:
        g.add_row(
            "graph threads",
            f"{st.graph_threads:,} (LangGraph), {_plural(st.graph_checkpoints, 'checkpoint')}",
        )
    g.add_row("oldest created", fmt_time(st.oldest_session))
    g.add_row("newest created", fmt_time(st.newest_session))
    g.add_row(
        "journal",
        f"{_plural(st.records, 'event')} (seq up to {st.last_seq}) in "
        f"{_plural(st.segments, 'segment')}, "
        f"{fmt_bytes(st.total_size_bytes)}",
    )
    g.add_row(
        "bytes",
        f"{fmt_bytes(st.live_bytes)} live (current sessions and checkpoints), "
        f"{fmt_bytes(st.reclaimable_bytes)} reclaimable by `agcx compact` (7d retention)",
    )
    g.add_row("horizon", f"seq {st.horizon_seq}" if st.horizon_seq else "none")
    out.print(g)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    t.add_column("event")
    t.add_column("count", justify="right")
    for name, n in st.events_by_type.items():
        t.add_row(name, f"{n:,}")
    out.print()
    out.print(t)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from tools._lines import print_json
    from tools._render import markdown_transcript

    if args.format == "codex":
        return _export_codex(args)
    if args.output:
        raise UsageError("-o/--output is for --format codex; redirect stdout for the others")
    with _store(args) as store:
        q = _view(store, args.at)
        found = _resolve_session(q, args.session, at=args.at is not None)
        meta, conv, state = q.load_session(found.id)
    if args.format == "markdown":
        sys.stdout.write(markdown_transcript(meta, conv, state))
        sys.stdout.flush()
    else:
        print_json({"metadata": meta, "conversation": conv, "state": state})
    return EXIT_OK


def _export_codex(args: argparse.Namespace) -> int:
    """Write the session as a Codex rollout: to ``-o FILE`` (atomically), else stdout."""
    import tempfile

    from journal._codex import export_codex_lines

    with _store(args) as store:
        q = _view(store, args.at)
        found = _resolve_session(q, args.session, at=args.at is not None)
        lines = export_codex_lines(q, found.id)
        if not args.output:
            out = sys.stdout.buffer
            for chunk in lines:
                out.write(chunk)
            out.flush()
            return EXIT_OK
        target = os.path.abspath(args.output)
        fd, tmp = tempfile.mkstemp(prefix=".agcx-export-", dir=os.path.dirname(target))
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in lines:
                    f.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return EXIT_OK


# -- log ----------------------------------------------------------------------------------


def _event_types(text: str | None) -> set[int] | None:
    from journal._events import event_type_from_name

    if not text:
        return None
    out = set()
    for part in text.split(","):
        try:
            out.add(event_type_from_name(part.strip()))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return out


def _log_session(args: argparse.Namespace, j: Journal, text: str | None) -> bytes | None:
    """The session a --session names: a full id, or a prefix of one.

    A prefix is looked up among the live sessions first (the index answers
    without reading the log); one no live session has is looked up among every
    session the log has seen (deleted and purged ones too).
    """
    from uuid import UUID

    if text is None:
        return None
    prefix = text.strip().lower().replace("-", "")
    if len(prefix) == 32:
        try:
            return UUID(prefix).bytes
        except ValueError:
            pass
    if not prefix or any(c not in "0123456789abcdef" for c in prefix) or len(prefix) > 32:
        raise UsageError(f"--session {text!r} is not a session id or a prefix of one (hex digits)")
    with _store(args) as store:
        live = store.find_sessions(id_prefix=prefix, limit=1)
    if live.total == 1:
        return live.sessions[0].id.bytes
    if live.total > 1:
        raise UsageError(f"{text!r} matches {live.total} sessions: give more characters")
    seen = {rec.session for rec in j.scan() if rec.session_id is not None}
    matches = [s for s in seen if s.hex().startswith(prefix)]
    if not matches:
        raise UsageError(f"no event in the log belongs to a session starting with {text!r}")
    if len(matches) > 1:
        raise UsageError(
            f"{text!r} matches {len(matches)} sessions in the log: give more characters"
        )
    return matches[0]


def _entry_json(rec: Any, e: HistoryEntry, actor: str | None) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "ts": e.ts.isoformat(),
        "ts_ns": rec.ts_ns,
        "event": e.event,
        "type": rec.event_type,
        "session": None if e.session_id is None else str(e.session_id),
        "summary": e.summary,
        "actor": actor,
        "bytes": rec.size,
    }


class _LogFormat:
    """Records as audit lines (or JSON lines), with the per-line work cached:
    one local-time string per second, one short id per session, one name per
    event type; nothing is built per line beyond the summary and the line."""

    def __init__(self, j: Journal, as_json: bool) -> None:
        from journal._events import event_name, upcast
        from journal._store import history_entry, summarize

        self._j = j
        self._entry = history_entry
        self._summarize = summarize
        self._upcast = upcast
        self._event_name = event_name
        self._json = as_json
        self._times: dict[int, str] = {}
        self._ids: dict[bytes, str] = {}
        self._names: dict[int, str] = {}

    def _when(self, ts_ns: int) -> str:
        sec = ts_ns // 1_000_000_000
        text = self._times.get(sec)
        if text is None:
            if len(self._times) > 4096:
                self._times.clear()
            text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sec))
            self._times[sec] = text
        return text

    def line(self, rec: Any) -> str:
        from tools._lines import event_line

        if self._json:
            import json

            e = self._entry(self._j, rec)
            return json.dumps(_entry_json(rec, e, e.actor), ensure_ascii=False)
        t = rec.event_type
        try:
            summary = self._summarize(t, self._upcast(t, self._j.decode(rec)))
        except Exception as exc:  # an audit listing shows damage instead of stopping
            summary = f"undecodable: {exc}"
        name = self._names.get(t)
        if name is None:
            name = self._names[t] = self._event_name(t)
        sid = self._ids.get(rec.session)
        if sid is None:
            sid = "-" if rec.session_id is None else rec.session.hex()[:8]
            self._ids[rec.session] = sid
        return event_line(rec.seq, self._when(rec.ts_ns), name, sid, summary)


def cmd_log(args: argparse.Namespace) -> int:
    if args.follow and args.until:
        raise UsageError("--follow and --until do not go together (--follow never ends)")
    if args.follow and not args.since and not args.last:
        args.last = 10  # as tail -f: the last lines, then what comes (--since for more)
    types = _event_types(args.type)
    from_seq = until_seq = None
    since_ns = until_ns = None
    if args.since:
        w = parse_when(args.since)
        if isinstance(w, int):
            from_seq = w + 1
        else:
            since_ns = _to_ns(w)
    if args.until:
        w = parse_when(args.until)
        if isinstance(w, int):
            until_seq = w
        else:
            until_ns = _to_ns(w)
    as_json = _json(args)
    with _journal(args) as j:
        session = _log_session(args, j, args.session)

        def matches(rec: Any) -> bool:
            # Header fields only: nothing is decoded for events filtered out.
            if session is not None and rec.session != session:
                return False
            return types is None or rec.event_type in types

        fmt = _LogFormat(j, as_json)
        last_seq = j.last_seq
        if args.last:
            picked = _last_records(j, args.last, matches, from_seq, until_seq, since_ns, until_ns)
            rows: Iterator[Any] = iter(picked)
            if picked:
                last_seq = max(last_seq, picked[-1].seq)
        else:
            rows = (
                r
                for r in j.scan(
                    from_seq=from_seq, until_seq=until_seq, since=since_ns, until=until_ns
                )
                if matches(r)
            )
        if args.follow:
            return _follow(j, fmt, list(rows), last_seq, matches, args.max_events, args.timeout)
        with _paged(args) as out:
            _write_log(out, fmt, rows, as_json)
        return EXIT_OK


def _to_ns(when: Any) -> int:
    from journal._log import to_ns

    return to_ns(when)


def _last_records(
    j: Journal,
    n: int,
    matches: Callable[[Any], bool],
    from_seq: int | None,
    until_seq: int | None,
    since_ns: int | None,
    until_ns: int | None,
) -> list[Any]:
    """The last ``n`` matching records, oldest first, read from the newest back."""
    picked: list[Any] = []
    for rec in j.scan_reverse(from_seq=from_seq, until_seq=until_seq):
        if since_ns is not None and rec.ts_ns < since_ns:
            break
        if until_ns is not None and rec.ts_ns > until_ns:
            continue
        if matches(rec):
            picked.append(rec)
            if len(picked) >= n:
                break
    picked.reverse()
    return picked


def _write_log(out: Output, fmt: _LogFormat, rows: Iterator[Any], as_json: bool) -> None:
    """Stream the lines (JSON: one document, one event per line), a chunk at a time."""
    line = fmt.line
    if as_json:
        out.write('{"events": [')
    sep = "\n"
    buf: list[str] = []
    n = 0
    for rec in rows:
        buf.append(sep + line(rec) if as_json else line(rec) + "\n")
        if as_json:
            sep = ",\n"
        n += 1
        if len(buf) >= 256:
            out.write("".join(buf))
            buf = []
    if as_json:
        buf.append("\n]}\n" if n else "]}\n")
    elif not n:
        buf.append("no events\n")
    out.write("".join(buf))
    out.flush()


def _follow(
    j: Journal,
    fmt: _LogFormat,
    first: list[Any],
    last_seq: int,
    matches: Callable[[Any], bool],
    max_events: int | None,
    timeout: float | None,
) -> int:
    """Print events as they land until interrupted (or the testing limits are hit).

    Ctrl-C (or SIGTERM) is how a follow ends: exit code 0.
    """
    from tools._interrupt import Terminated

    def emit(rec: Any) -> None:
        sys.stdout.write(fmt.line(rec) + "\n")
        sys.stdout.flush()

    seen = 0
    try:
        for rec in first:
            emit(rec)
            seen += 1
        if max_events is not None and seen >= max_events:
            return EXIT_OK
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for rec in j.scan(from_seq=last_seq + 1):
                last_seq = rec.seq
                if not matches(rec):
                    continue
                emit(rec)
                seen += 1
                if max_events is not None and seen >= max_events:
                    return EXIT_OK
            if deadline is not None and time.monotonic() >= deadline:
                return EXIT_OK
            time.sleep(_FOLLOW_POLL)
    except (KeyboardInterrupt, Terminated):
        return EXIT_OK


# -- verify, replay, recover --------------------------------------------------------------


def _verify_lines(report: VerifyReport) -> list[str]:
    from tools._lines import fmt_bytes

    seqs = f"seq {report.first_seq}..{report.last_seq}" if report.records else "no records"
    lines = [
        f"read {_plural(report.segments, 'segment')}: {_plural(report.records, 'record')}, "
        f"{fmt_bytes(report.bytes)}, {seqs} in {report.seconds:.2f} s"
    ]
    lines += [f"warning: {w}" for w in report.warnings]
    lines += [f"problem: {p}" for p in report.problems]
    if report.intact:
        lines.append("intact: every checksum, seq, payload and manifest entry checks out")
    else:
        n = len(report.problems)
        lines.append(
            f"{n} problem{'s' if n != 1 else ''} found; nothing was changed "
            "(`agcx recover --salvage --out DIR` copies every readable record)"
        )
    return lines


def _lines(lines: Sequence[str]) -> None:
    """Plain lines on stdout: one per fact or problem, never wrapped (for grep)."""
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def cmd_verify(args: argparse.Namespace) -> int:
    if args.replica:
        return _verify_replica(args)
    from tools._lines import print_json
    from tools._render import progress_bar
    from tools._verify import verify

    root = _root(args)
    with progress_bar("verify") as bar:
        report = verify(root, progress=bar)
    if _json(args):
        print_json(report)
    else:
        _lines(_verify_lines(report))
    return EXIT_OK if report.intact else EXIT_PROBLEM


def cmd_replay(args: argparse.Namespace) -> int:
    from journal._store import resolve_point
    from tools._lines import print_json
    from tools._render import progress_bar
    from tools._replay import replay

    with _journal(args) as j:
        until = resolve_point(j, parse_when(args.until)) if args.until else j.last_seq
        with progress_bar("replay", unit_bytes=False) as bar:
            report = replay(j, until, progress=bar)
    if _json(args):
        print_json(report)
    else:
        lines = [
            f"replayed {report.events:,} events ({report.bytes / 1e6:.2f} MB) up to seq "
            f"{report.seq} in {report.seconds:.3f} s: {report.events_per_second:,.0f} "
            f"events/s, {report.mb_per_second:.1f} MB/s",
            f"compared with: {report.snapshot}",
        ]
        lines += [f"mismatch: {m}" for m in report.mismatches]
        if report.snapshot_seq is not None:
            lines.append(
                "identical: the persisted projection state equals the rebuilt one"
                if report.ok
                else "the persisted projection state differs from the log: delete "
                "projections/*.snap to have them rebuilt, and report a bug"
            )
        _lines(lines)
    return EXIT_OK if report.ok else EXIT_PROBLEM


def cmd_recover(args: argparse.Namespace) -> int:
    if args.from_url is not None:
        return _recover_from(args)
    from journal import JournalError, recover, salvage
    from tools._lines import fmt_bytes, print_json
    from tools._render import progress_bar

    if args.salvage == (args.at is not None):
        raise UsageError("give exactly one of --at WHEN and --salvage")
    root = _root(args)
    if args.at is not None:
        if not os.path.isfile(os.path.join(root, "MANIFEST")):
            raise JournalError(
                f"{root} is not an agcx journal (no MANIFEST); to copy what is readable of a "
                "damaged one, use --salvage"
            )
        when = parse_when(args.at)
        with progress_bar("recover") as bar:
            rep = recover(root, args.out, at=when, progress=bar)
        if _json(args):
            print_json(rep)
        else:
            _lines(
                [
                    f"recovered {_plural(rep.records, 'record')} ({fmt_bytes(rep.bytes)}) up to "
                    f"seq {rep.seq} into {rep.target} in {rep.seconds:.2f} s",
                    f"it is a working store: agcx --root {rep.target} ls",
                ]
            )
        return EXIT_OK
    with progress_bar("salvage") as bar:
        srep = salvage(root, args.out, progress=bar)
    if _json(args):
        print_json(srep)
    else:
        seqs = f"seq {srep.first_seq}..{srep.last_seq}" if srep.records else "no records"
        lines = [
            f"salvaged {_plural(srep.records, 'record')} ({fmt_bytes(srep.bytes)}, {seqs}) from "
            f"{_plural(srep.segments_read, 'segment')} into {srep.target} in "
            f"{srep.seconds:.2f} s"
        ]
        lines += [
            f"skipped: segments/{s.segment} offsets {s.start}..{s.end} ({s.bytes:,} bytes): "
            f"{s.reason}"
            for s in srep.skipped
        ]
        lines += [f"problem: {p}" for p in srep.problems]
        lines.append(
            "nothing was skipped"
            if srep.intact
            else "the rest was copied; the source was not changed"
        )
        _lines(lines)
    return EXIT_OK if srep.intact else EXIT_PROBLEM


# -- replication (journal/_replicate.py) ---------------------------------------------------


def cmd_replicate(args: argparse.Namespace) -> int:
    import signal

    from journal import JournalError
    from journal._replicate import Replicator
    from tools._lines import fmt_bytes, fmt_ns, print_json

    root = _root(args)
    if not os.path.isfile(os.path.join(root, "MANIFEST")):
        raise JournalError(f"{root} is not an agcx journal (no MANIFEST)")
    retention = parse_duration(args.retention)
    with Replicator(root, args.url, interval=args.interval, retention=retention) as r:
        if args.once:
            stats = _replicate_once(r)
            if _json(args):
                print_json(stats)
            else:
                _lines([
                    f"replicated {root} to {r.url} up to seq {stats.seq}"
                    f" ({fmt_ns(stats.ts_ns) if stats.ts_ns else 'nothing yet'}): generation "
                    f"{stats.generation}, {stats.objects_put:,} objects "
                    f"({fmt_bytes(stats.bytes_put)}) uploaded, {stats.objects_deleted:,} deleted"
                ])
            return EXIT_OK
        sys.stderr.write(
            f"agcx: replicating {root} to {r.url} every {args.interval:g} s (Ctrl-C stops)\n"
        )

        def report(exc: JournalError) -> None:
            _error(f"{exc} (the journal is untouched; the replica lags; retrying)")

        # SIGTERM stops as Ctrl-C does: after the cycle under way, lease released.
        previous = signal.signal(signal.SIGTERM, lambda *_: r.stop())
        try:
            r.run(on_error=report)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        stats = r.statistics()
    sys.stderr.write(
        f"agcx: stopped at seq {stats.seq}: {stats.objects_put:,} objects "
        f"({fmt_bytes(stats.bytes_put)}) uploaded\n"
    )
    return EXIT_OK


def _replicate_once(r: Replicator) -> ReplicationStatistics:
    """One cycle, retried a few times when the store is unavailable (as `run` would)."""
    from journal._replicate import ReplicaUnavailable

    delay = 0.5
    for attempt in range(5):
        try:
            return r.run_once()
        except ReplicaUnavailable as exc:
            if attempt == 4:
                raise
            _error(f"{exc} (retrying in {delay:g} s)")
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _recover_from(args: argparse.Namespace) -> int:
    from journal._replica_restore import recover_from_replica
    from tools._lines import fmt_bytes, print_json
    from tools._render import progress_bar

    if args.salvage:
        raise UsageError("--salvage reads a local journal; it does not go with --from")
    when = parse_when(args.at) if args.at is not None else None
    with progress_bar("download") as bar:
        rep = recover_from_replica(args.from_url, args.out, at=when, progress=bar)
    if _json(args):
        print_json(rep)
    else:
        _lines(
            [
                f"recovered {_plural(rep.records, 'record')} ({fmt_bytes(rep.bytes)}) up to "
                f"seq {rep.seq} from {rep.source} into {rep.target} in {rep.seconds:.2f} s",
                f"it is a working store: agcx --root {rep.target} ls",
            ]
        )
    return EXIT_OK


def _verify_replica(args: argparse.Namespace) -> int:
    from journal._replica_restore import verify_replica
    from tools._lines import fmt_bytes, fmt_time, print_json

    report = verify_replica(args.replica)
    if _json(args):
        print_json(report)
    else:
        last = fmt_time(report.last_ts) if report.last_ts else "-"
        lines = [
            f"{report.url}: {_plural(report.generations, 'generation')}, "
            f"{_plural(report.segments, 'segment')}, {_plural(report.objects, 'object')} "
            f"({fmt_bytes(report.bytes)}), {_plural(report.records, 'record')} up to seq "
            f"{report.last_seq} ({last})"
        ]
        lines += [f"problem: {p}" for p in report.problems]
        lines.append("intact" if report.intact else "the replica is damaged or incomplete")
        _lines(lines)
    return EXIT_OK if report.intact else EXIT_PROBLEM


# -- import, compact, purge ---------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    if args.codex is not None:
        return _import_codex(args)
    from tools._render import progress_bar

    root = _root(args)
    legacy = os.path.abspath(os.path.expanduser(args.legacy_root)) if args.legacy_root else root
    with contextlib.ExitStack() as stack:
        store = _import_store(args, root, stack)
        with progress_bar("import", unit_bytes=False) as bar:
            report = store.import_legacy(legacy, dry_run=args.dry_run, progress=bar)
    return _import_report(
        args, report,
        f"{report.sessions_imported} sessions and {report.checkpoints_imported} checkpoints "
        f"from {report.root}; {report.already_imported} files already imported",
    )


def _import_store(args: argparse.Namespace, root: str, stack: contextlib.ExitStack) -> SessionStore:
    """The store an import writes to (an empty scratch one for a dry run without a journal)."""
    import tempfile

    from journal import SessionStore

    has_journal = os.path.isfile(os.path.join(root, "MANIFEST"))
    if args.dry_run and not has_journal:
        # No journal yet: nothing is imported, so an empty store answers the same.
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="agcx-dry-run-"))
        store = SessionStore.open(tmp, durability="none", snapshots=False)
    elif has_journal or args.dry_run:
        store = SessionStore.open(root, readonly=args.dry_run)
    else:
        # A new journal is made whole or not at all: Ctrl-C waits the few
        # milliseconds its creation takes (a directory without MANIFEST would
        # otherwise be left behind).
        from tools._interrupt import deferred

        with deferred():
            store = SessionStore.open(root)
            stack.callback(store.close)
        return store
    stack.callback(store.close)
    return store


def _import_report(args: argparse.Namespace, report: Any, what: str) -> int:
    from rich.text import Text

    from tools._lines import print_json

    if _json(args):
        print_json(report.to_json())
    else:
        out = _out()
        verb = "would import" if report.dry_run else "imported"
        out.print(
            Text(f"{verb} {what}; {len(report.problems)} problems ({report.seconds:.2f} s)")
        )
        for p in report.problems:
            out.print(Text(f"problem: {p.path}: {p.reason}"))
    return EXIT_PROBLEM if report.problems else EXIT_OK


def _import_codex(args: argparse.Namespace) -> int:
    from journal._codex import default_codex_home
    from tools._render import progress_bar

    if args.legacy_root:
        raise UsageError("give either LEGACY_ROOT or --codex [CODEX_HOME], not both")
    home = os.path.abspath(os.path.expanduser(args.codex or default_codex_home()))
    with contextlib.ExitStack() as stack:
        store = _import_store(args, _root(args), stack)
        with progress_bar("import codex") as bar:
            report = store.import_codex(home, dry_run=args.dry_run, progress=bar)
    return _import_report(
        args, report,
        f"{report.sessions_imported} rollouts and new lines of {report.sessions_extended} from "
        f"{report.root} ({report.lines_imported} lines, {report.bytes_read / 1e6:.1f} MB read); "
        f"{report.already_imported} already imported",
    )


def cmd_compact(args: argparse.Namespace) -> int:
    from rich.text import Text

    from tools._lines import fmt_bytes, fmt_time, print_json
    from tools._render import progress_bar

    retain = parse_duration(args.retain)
    with (
        _store(args, readonly=args.dry_run) as store,
        progress_bar("compact", unit_bytes=False),
    ):
        report = store.compact(retain=retain, dry_run=args.dry_run, seal=args.seal)
    if _json(args):
        print_json(report)
        return EXIT_OK
    out = _out()
    title = "compaction (dry run: nothing written)" if args.dry_run else "compaction"
    if report.note:
        out.print(Text(f"{title}: nothing to compact: {report.note}"))
        return EXIT_OK
    verb = "would reclaim" if args.dry_run else "reclaimed"
    g = _grid()
    g.add_row("segments", f"{report.segments_before} -> {report.segments_after}")
    g.add_row("events", f"{report.records_before:,} -> {report.records_after:,} (folded)")
    g.add_row(
        "bytes",
        f"{fmt_bytes(report.bytes_before)} -> {fmt_bytes(report.bytes_after)} "
        f"({verb} {fmt_bytes(report.reclaimed_bytes)})",
    )
    g.add_row(
        "kept",
        f"{_plural(report.live_sessions, 'live session')}, "
        f"{_plural(report.live_checkpoints, 'checkpoint')}",
    )
    g.add_row(
        "horizon",
        f"seq {report.horizon_seq} ({fmt_time(report.horizon_time)}): "
        "the earliest point `--at` can show",
    )
    g.add_row("took", f"{report.seconds:.2f} s")
    out.print(Text(title, style="bold"))
    out.print(g)
    return EXIT_OK


def _grid() -> Table:
    from rich.table import Table

    g = Table.grid(padding=(0, 2))
    g.add_column(style="bold")
    g.add_column()
    return g


def _confirmed(args: argparse.Namespace, why: str, question: Callable[[], str]) -> bool:
    """Whether a rewrite of the journal may go ahead: ``--yes``, or a "y" typed at
    a terminal (elsewhere ``--yes`` is required: ``why`` says what it does)."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{why}: add --yes to confirm")
    return input(f"{question()} [y/N] ").strip().lower() in ("y", "yes")


def _copies_row(g: Table, files_removed: Sequence[str]) -> None:
    g.add_row(
        "copies",
        f"{_plural(len(files_removed), 'derived file')} removed (projection "
        "snapshots, rebuilt on the next open; quarantined tails)",
    )


def cmd_purge(args: argparse.Namespace) -> int:
    import getpass
    import socket

    from rich.text import Text

    from tools._lines import fmt_bytes, print_json

    with _store(args, readonly=False) as store:
        meta = _resolve_session(store, args.session)
        if not _confirmed(
            args,
            "purge removes the session's bytes for good",
            lambda: f"purge {meta.title!r} ({meta.id}) for good?",
        ):
            _out().print("nothing purged")
            return EXIT_OK
        actor = args.actor or f"agcx purge by {getpass.getuser()}@{socket.gethostname()}"
        report = store.purge(meta.id, actor=actor)
    if _json(args):
        print_json(report)
        return EXIT_OK
    out = _out()
    g = _grid()
    g.add_row("session", f"{meta.id} (purge event seq {report.purge_seq})")
    g.add_row(
        "removed",
        f"{_plural(report.records_removed, 'event')}, {fmt_bytes(report.bytes_removed)}"
        + (
            f", {report.dictionaries_removed} compression dictionaries trained on it"
            if report.dictionaries_removed
            else ""
        ),
    )
    g.add_row("rewritten", _plural(report.segments_rewritten, "segment"))
    _copies_row(g, report.files_removed)
    g.add_row("took", f"{report.seconds:.2f} s")
    out.print(Text(f"purged {meta.title!r}", style="bold"))
    out.print(g)
    out.print(Text(report.note[:1].upper() + report.note[1:] + ".", style="dim"))
    out.print(
        Text(
            "A running agent's next save of this session is refused (SessionPurged).",
            style="dim",
        )
    )
    return EXIT_OK


def cmd_fork(args: argparse.Namespace) -> int:
    from tools._lines import print_json

    with _store(args, readonly=False) as store:
        meta = _resolve_session(store, args.session)
        new = store.fork_session(
            meta.id, at_message=args.at_message, title=args.title, actor=args.actor
        )
        forked = store.get_metadata(new)
    if _json(args):
        print_json({"session": str(new), "source": str(meta.id), "metadata": forked})
    else:
        _out().print(
            f"forked {meta.title!r} at message {forked.message_count} into {new} "
            f"({forked.title!r})"
        )
    return EXIT_OK


def cmd_secrets(args: argparse.Namespace) -> int:
    """``secrets scan``: records holding secrets (exit 1 when any); ``secrets
    scrub``: rewrite them out of every segment (journal/_scrub.py)."""
    import getpass
    import socket

    from rich.text import Text

    from tools._lines import print_json

    if args.action == "scan":
        with _store(args) as store:
            found = store.scan_secrets()
        if _json(args):
            print_json([f.to_json() for f in found])
        else:
            out = _out()
            for f in found:
                sid = str(f.session_id) if f.session_id else "-"
                out.print(Text(f"seq {f.seq}  {f.event}  session {sid}  {', '.join(f.kinds)}"))
            out.print(Text(f"{len(found)} records hold secrets" if found else "no secrets found"))
        return EXIT_PROBLEM if found else EXIT_OK
    with _store(args, readonly=False) as store:
        if not _confirmed(
            args,
            "scrub rewrites the journal's segments",
            lambda: f"rewrite the secrets of {len(store.scan_secrets())} records out of "
            f"{store.root}?",
        ):
            _out().print("nothing scrubbed")
            return EXIT_OK
        actor = args.actor or f"agcx secrets scrub by {getpass.getuser()}@{socket.gethostname()}"
        report = store.scrub_secrets(actor=actor)
    if _json(args):
        print_json(report)
        return EXIT_OK
    out = _out()
    g = _grid()
    g.add_row("event", f"seq {report.scrub_seq}")
    g.add_row(
        "rewritten",
        f"{_plural(report.records_rewritten, 'record')} in "
        f"{_plural(report.segments_rewritten, 'segment')}"
        + (
            f", {_plural(report.blobs_recompressed, 'blob')} recompressed"
            if report.blobs_recompressed
            else ""
        ),
    )
    g.add_row("kinds", ", ".join(f"{k} x{n}" for k, n in report.kinds) or "-")
    if report.dictionaries_removed:
        g.add_row(
            "dictionaries",
            f"{report.dictionaries_removed} removed (they may hold a secret)",
        )
    _copies_row(g, report.files_removed)
    g.add_row("took", f"{report.seconds:.2f} s")
    out.print(Text("secrets scrubbed", style="bold"))
    out.print(g)
    return EXIT_OK


# -- demo ---------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from rich.text import Text

    from journal import Durability, SessionStore
    from tools._demo import fill
    from tools._render import history_table, sessions_table, short_id
    from tools._verify import verify

    started = time.monotonic()
    if args.root:
        root = os.path.abspath(os.path.expanduser(args.root))
        if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
            raise UsageError(
                f"{root} is not empty: the demo writes sample sessions, give a new or empty "
                "directory (or no --root for a temporary one)"
            )
        durability: Durability = "fsync"
    else:
        root = tempfile.mkdtemp(prefix="agcx-demo-")
        durability = "flush"
    with SessionStore.open(root, durability=durability) as store:
        facts = fill(store)
    out = _out()
    with SessionStore.open(root, readonly=True) as store:
        sessions = store.list_sessions()
        history = store.history()
        before = store.at(facts.before_cleanup).list_sessions()
    report = verify(root)
    gone = {s for s in facts.deleted}
    out.print(
        Text.assemble(
            ("agcx demo", "bold"),
            f": {len(facts.sessions)} coding-agent sessions over 44 simulated days, "
            f"{facts.events} events appended to the journal in {root}",
        )
    )
    out.print(
        Text(
            "Every change is an event: checksummed, appended once, made durable; "
            "the views below are projections of the log.",
            style="dim",
        )
    )
    out.print()
    out.print(Text("$ agcx ls", style="bold cyan"))
    out.print(sessions_table(sessions))
    out.print()
    out.print(Text("$ agcx log --last 6             # the audit trail", style="bold cyan"))
    out.print(history_table(history[-6:]))
    out.print()
    out.print(
        Text(
            f"$ agcx ls --at seq:{facts.before_cleanup}       # point in time: before the "
            "retention cleanup",
            style="bold cyan",
        )
    )
    table = sessions_table(before)
    out.print(table)
    if gone:
        names = ", ".join(repr(m.title) for m in before if m.id in gone)
        out.print(
            Text(
                f"  ({names} is alive here: it was deleted by the cleanup after seq "
                f"{facts.before_cleanup})",
                style="dim",
            )
        )
    out.print()
    out.print(Text("$ agcx verify", style="bold cyan"))
    for line in _verify_lines(report):
        out.print(Text(line), soft_wrap=True)
    out.print()
    first = short_id(sessions[0].id) if sessions else "ID"
    out.print(
        Text(
            f"Explore it: export AGCX_ROOT={root}; agcx show {first}; agcx log; agcx --help"
            f"   ({time.monotonic() - started:.1f} s)",
            style="dim",
        )
    )
    return EXIT_OK


# -- completion ---------------------------------------------------------------------------


def cmd_completion(args: argparse.Namespace) -> int:
    from tools import _complete

    if args.ids:
        # Asked by the completion scripts on Tab: quiet when there is no journal.
        if not os.path.isfile(os.path.join(_root(args), "MANIFEST")):
            return EXIT_OK
        with _store(args) as store:
            ids = [m.id.hex for m in store.find_sessions().sessions]
        sys.stdout.write("".join(f"{p}\n" for p in _complete.unique_prefixes(ids)))
        return EXIT_OK
    if args.shell is None:
        raise UsageError(f"give a shell: agcx completion {{{','.join(_complete.SHELLS)}}}")
    sys.stdout.write(_complete.script(args.shell, build_parser()))
    return EXIT_OK


# -- the parser ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose epilog may be computed when help is shown
    (``lazy_epilog``): `agcx log --help` lists the event types without every
    other command importing the journal to know them."""

    lazy_epilog: Callable[[], str] | None = None

    def format_help(self) -> str:
        if self.lazy_epilog is not None:
            self.epilog = self.lazy_epilog()
        return super().format_help()


def _log_epilog() -> str:
    from journal._events import EVENT_NAMES

    return _LOG_EPILOG + f"event types: {', '.join(EVENT_NAMES.values())}"


_LOG_EPILOG = (
    "--since WHEN lists events after WHEN (seq:N: after the record with seq N);\n"
    "--until WHEN lists events up to WHEN (seq:N: up to and including seq N).\n"
    "--last N reads the log backwards from its end: as fast on a million events as on ten.\n\n"
    "examples:\n  agcx log --last 20\n"
    "  agcx log --session 3fa2 --type TagsChanged,SessionRenamed\n"
    "  agcx log --since '1d ago' --json\n  agcx log --follow\n  agcx log | grep renamed\n\n"
)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="agcx",
        description="agcx: the journal of AI coding-agent sessions — list, audit, verify, "
        "replay and recover it.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument(
        "--root",
        metavar="PATH",
        help=f"the journal directory (default: $AGCX_ROOT, else {DEFAULT_ROOT})",
    )
    p.add_argument(
        "--json", dest="json_global", action="store_true", help="one JSON document on stdout"
    )
    p.add_argument(
        "--no-pager",
        action="store_true",
        help="never page (default on a terminal: $AGCX_PAGER, else $PAGER, else less -FRX)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(
        name: str, func: Callable[[argparse.Namespace], int], help: str, epilog: str = ""
    ) -> _Parser:
        sp = sub.add_parser(
            name, help=help, description=help, epilog=epilog or None, formatter_class=fmt
        )
        sp.set_defaults(func=func)
        return sp

    def json_flag(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--json", action="store_true", help="one JSON document on stdout")

    def at_flag(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--at", metavar="WHEN", help="as of a point in time (seq:N, RFC 3339 with zone, 2h ago)"
        )

    sp = cmd(
        "info",
        cmd_info,
        "segments, records, bytes, seq and time range, horizon, projection snapshots",
    )
    json_flag(sp)

    sp = cmd(
        "ls",
        cmd_ls,
        "list sessions, most recently accessed first: id, last accessed, messages, mode, title",
        "Shows the newest 50 (-n N for another number, --all for every one); the\n"
        "filters apply first, then the limit. A footer says how many more there are.\n\n"
        "examples:\n  agcx ls --tag bug\n  agcx ls --favorites -n 10\n"
        "  agcx ls --since '2d ago' --mode build\n  agcx ls --all --search retry\n"
        "  agcx ls --at '2h ago'\n  agcx --json ls --all > sessions.json",
    )
    sp.add_argument(
        "-n", type=_positive, default=50, metavar="N", help="show the newest N (default 50)"
    )
    sp.add_argument("--all", action="store_true", help="show every matching session")
    sp.add_argument("--tag", metavar="T", help="only sessions with this tag")
    sp.add_argument("--favorites", action="store_true", help="only favorite sessions")
    sp.add_argument(
        "--kind",
        metavar="K",
        help="only sessions of this kind: the tag kind:K (e.g. openai-agents); "
        "'session' for those without one",
    )
    sp.add_argument(
        "--search", metavar="TEXT", help="only sessions whose title or a tag contains TEXT"
    )
    sp.add_argument("--since", metavar="WHEN", help="only sessions accessed since WHEN")
    sp.add_argument(
        "--mode", metavar="MODE", help="only sessions in this mode: plan, build, review"
    )
    at_flag(sp)
    json_flag(sp)

    sp = cmd(
        "show",
        cmd_show,
        "one session: metadata, checkpoints and the conversation",
        "SESSION is an id or an unambiguous prefix of one (as `agcx ls` shows).\n\n"
        "examples:\n  agcx show 3fa2\n  agcx show 3fa2 --at seq:120\n"
        "  agcx show 3fa2 --checkpoint 9c01",
    )
    sp.add_argument("session", metavar="SESSION")
    at_flag(sp)
    sp.add_argument("--checkpoint", metavar="ID", help="show this checkpoint's conversation")
    sp.add_argument(
        "--last", metavar="N", type=_positive, help="only the last N messages of the conversation"
    )
    sp.add_argument("--full", action="store_true", help="do not fold long tool output")
    json_flag(sp)

    sp = cmd("log", cmd_log, "the audit trail: seq, time, event, session, summary")
    sp.lazy_epilog = _log_epilog
    sp.add_argument("--session", metavar="S", help="only events of this session (id or prefix)")
    sp.add_argument("--type", metavar="T", help="only these event types (comma-separated)")
    sp.add_argument("--since", metavar="WHEN", help="only events after WHEN")
    sp.add_argument("--until", metavar="WHEN", help="only events up to WHEN")
    sp.add_argument("--last", metavar="N", type=_positive, help="only the last N events")
    sp.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing events as they land (Ctrl-C stops)",
    )
    # For tests and scripts: stop after N events printed, or after SECONDS.
    sp.add_argument("--max-events", type=_positive, help=argparse.SUPPRESS)
    sp.add_argument("--timeout", type=float, help=argparse.SUPPRESS)
    json_flag(sp)

    sp = cmd(
        "verify",
        cmd_verify,
        "read every record: checksums, seqs, payloads, the manifest; exit 1 on any problem",
        "Never changes anything. Reports every problem with its segment, offset and reason.\n"
        "--replica URL checks a replica (agcx replicate) instead, downloading each object once.",
    )
    sp.add_argument("--replica", metavar="URL", help="check this replica, not the journal")
    json_flag(sp)

    sp = cmd(
        "replay",
        cmd_replay,
        "rebuild every projection from the log, time it, and compare with the snapshots",
    )
    sp.add_argument("--until", metavar="WHEN", help="replay only up to WHEN")
    json_flag(sp)

    sp = cmd(
        "recover",
        cmd_recover,
        "write a new journal: the events up to a point in time, or every readable record",
        "examples:\n  agcx recover --at seq:1200 --out ~/restored\n"
        "  agcx recover --at 2024-05-01T10:42:00+02:00 --out ~/restored\n"
        "  agcx recover --salvage --out ~/salvaged\n"
        "  agcx recover --from s3://bucket/agcx --at '2h ago' --out ~/restored\n\n"
        "The source is only read. DIR must be new or an empty directory. --from URL\n"
        "restores from a replica (agcx replicate) instead of the local journal.\n"
        "Interrupted (Ctrl-C), it leaves the source as it was and DIR as it was or\n"
        "holding the whole new journal: that is built aside and moved into place\n"
        "only once complete.",
    )
    sp.add_argument("--at", metavar="WHEN", help="keep the events up to WHEN")
    sp.add_argument(
        "--from",
        dest="from_url",
        metavar="URL",
        help="restore from this replica (s3://bucket/prefix or file:///path)",
    )
    sp.add_argument(
        "--salvage", action="store_true", help="copy every readable record of a damaged journal"
    )
    sp.add_argument("--out", metavar="DIR", required=True, help="the new journal (new or empty)")
    json_flag(sp)

    sp = cmd(
        "stats", cmd_stats, "sessions, checkpoints, events by type, live and reclaimable bytes"
    )
    json_flag(sp)

    sp = cmd(
        "export",
        cmd_export,
        "write one session to stdout as JSON (Responses-API items) or a Markdown transcript",
        "examples:\n  agcx export 3fa2 > session.json\n"
        "  agcx export 3fa2 --format markdown > s.md\n"
        "  agcx export 3fa2 --format codex -o rollout-3fa2.jsonl  (a rollout Codex resumes)",
    )
    sp.add_argument("session", metavar="SESSION")
    sp.add_argument("--format", choices=("json", "markdown", "codex"), default="json")
    sp.add_argument(
        "-o", "--output", metavar="FILE", help="with --format codex: write the rollout to FILE"
    )
    at_flag(sp)

    sp = cmd(
        "import",
        cmd_import,
        "import a legacy (format version 2) history: sessions/*.agcx and checkpoints/*.ckpt",
        "LEGACY_ROOT defaults to the journal root itself. Files already imported are\n"
        "skipped; damaged files are reported (exit 1) and never changed.\n"
        "Interrupted (Ctrl-C), each file is imported whole or not at all: the files\n"
        "done are in the journal, and running the import again does the rest.\n\n"
        "--codex imports every Codex CLI rollout (sessions/, archived_sessions/, .jsonl\n"
        "or .jsonl.zst) instead; a rollout that grew since adds only its new lines.",
    )
    sp.add_argument("legacy_root", metavar="LEGACY_ROOT", nargs="?")
    sp.add_argument(
        "--codex",
        metavar="CODEX_HOME",
        nargs="?",
        const="",
        help="import Codex CLI rollouts instead (CODEX_HOME: $CODEX_HOME or ~/.codex)",
    )
    sp.add_argument("--dry-run", action="store_true", help="report what would be imported")
    json_flag(sp)

    sp = cmd(
        "compact",
        cmd_compact,
        "fold sealed segments older than --retain into the events that rebuild the same state",
        "Points in time before the new horizon are no longer recoverable.\n"
        "Interrupted (Ctrl-C), the journal is as it was before, or fully compacted if\n"
        "the new manifest was already in place: never half of it.\n\n"
        "examples:\n  agcx compact --dry-run\n  agcx compact --retain 30d\n"
        "  agcx compact --seal --retain 0s   # everything, the active segment too",
    )
    sp.add_argument(
        "--retain", metavar="DURATION", default="7d", help="keep this much history (default 7d)"
    )
    sp.add_argument("--dry-run", action="store_true", help="report what would be done")
    sp.add_argument(
        "--seal",
        action="store_true",
        help="seal the active segment first, so that recent events can be compacted too "
        "(the active segment is otherwise never compacted)",
    )
    json_flag(sp)

    sp = cmd(
        "purge",
        cmd_purge,
        "delete a session and remove every byte of it from the journal (privacy)",
        "Asks for confirmation on a terminal; elsewhere --yes is required.\n"
        "Points in time before the purge no longer show the session; the rest of the\n"
        "history is unchanged. A SessionPurged event records who purged it and when.",
    )
    sp.add_argument("session", metavar="SESSION")
    sp.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sp.add_argument("--actor", metavar="NAME", help="who purges (recorded in the event)")
    json_flag(sp)

    sp = cmd(
        "fork",
        cmd_fork,
        "start a new session as the first N messages of SESSION (one small event)",
        "The fork reads SESSION's records up to the fork point and goes its own way;\n"
        "`agcx show` and `agcx log` say where it came from.\n\n"
        "examples:\n  agcx fork 3fa2\n  agcx fork 3fa2 --at-message 12 --title 'try B'",
    )
    sp.add_argument("session", metavar="SESSION")
    sp.add_argument(
        "--at-message", metavar="N", type=int, help="keep the first N messages (default: all)"
    )
    sp.add_argument("--title", metavar="T", help="the fork's title (default: SESSION's + (fork))")
    sp.add_argument("--actor", metavar="NAME", help="who forks (recorded in the event)")
    json_flag(sp)

    sp = cmd(
        "secrets",
        cmd_secrets,
        "find secrets already in the journal (scan), or rewrite them out of it (scrub)",
        "scan lists each record holding a secret (seq, event, session, kinds; never the\n"
        "value) and exits 1 when there is any. scrub replaces each by its marker in\n"
        "every segment, drops dictionaries that may hold one and removes snapshots and\n"
        "quarantined tails, as purge does; it asks on a terminal, elsewhere needs --yes.\n\n"
        "examples:\n  agcx secrets scan\n  agcx secrets scrub --yes",
    )
    sp.add_argument("action", choices=["scan", "scrub"])
    sp.add_argument("--yes", action="store_true", help="scrub: do not ask for confirmation")
    sp.add_argument("--actor", metavar="NAME", help="scrub: who scrubs (recorded in the event)")
    json_flag(sp)

    sp = cmd(
        "replicate",
        cmd_replicate,
        "ship the journal to object storage as it grows (s3://bucket/prefix, file:///path)",
        "Follows the journal without its commit lock: writers never wait for it.\n"
        "Configuration: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
        "AWS_REGION, AWS_PROFILE (an http:// endpoint is plain HTTP). See docs/REPLICATION.md.\n\n"
        "examples:\n  agcx replicate s3://backups/agcx\n"
        "  agcx replicate file:///mnt/nas/agcx --once\n"
        "  agcx recover --from s3://backups/agcx --out ~/restored",
    )
    sp.add_argument("url", metavar="URL")
    sp.add_argument("--once", action="store_true", help="ship what is there now and exit")
    sp.add_argument(
        "--interval",
        metavar="S",
        type=float,
        default=1.0,
        help="seconds between increments (default 1; sooner when 4 MiB gathered)",
    )
    sp.add_argument(
        "--retention",
        metavar="DURATION",
        default="7d",
        help="keep replaced history (before a compaction) this long (default 7d)",
    )
    json_flag(sp)

    cmd(
        "demo",
        cmd_demo,
        "fill a journal (a temporary one unless --root is given) and tour it",
    )
    sp = cmd(
        "completion",
        cmd_completion,
        "print a shell completion script: commands, options, session ids",
        "examples:\n  source <(agcx completion bash)        # in ~/.bashrc\n"
        "  source <(agcx completion zsh)         # in ~/.zshrc\n"
        "  agcx completion fish > ~/.config/fish/completions/agcx.fish",
    )
    sp.add_argument("shell", metavar="SHELL", nargs="?", choices=("bash", "zsh", "fish"))
    # What the scripts call on Tab: the live sessions' shortest unique id prefixes.
    sp.add_argument("--ids", action="store_true", help=argparse.SUPPRESS)
    bench.add_arguments(
        cmd("bench", bench.run, "agcx vs the old store, SQLite and JSONL on one workload")
    )
    return p


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return n


def _error(message: object) -> None:
    text = " ".join(str(message).split("\n"))
    sys.stderr.write(f"agcx: {text}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``agcx`` with ``argv`` (default: the process's); return the exit code.

    Ctrl-C (SIGINT) or SIGTERM stops any command: it unwinds (closing the store
    releases its locks; a write is whole or absent, see each command's help)
    and ends with exit code 130 (143 for SIGTERM) and one line on stderr. The
    caller's signal handlers are put back before returning.
    """
    return _main(argv, exiting=False)


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``agcx`` program: :func:`main`, then exit with its code (a Ctrl-C
    after the command is done is ignored: only the exit is left)."""
    sys.exit(_main(argv, exiting=True))


def _main(argv: Sequence[str] | None, *, exiting: bool) -> int:
    from tools import _interrupt

    previous = _interrupt.install()
    try:
        try:
            args = build_parser().parse_args(argv)
            return int(args.func(args))
        finally:
            if exiting:
                _interrupt.ignore()
            else:
                _interrupt.restore(previous)
    except UsageError as exc:
        _error(exc)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`agcx log | head`, or `q` in the pager): stop quietly.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (KeyboardInterrupt, _interrupt.Terminated) as exc:
        _error("interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated")
        return _interrupt.exit_code(exc)
    except Exception as exc:
        code = _journal_error_code(exc)
        if code is None:
            raise
        _error(exc)
        return code


def _journal_error_code(exc: Exception) -> int | None:
    """The exit code for a journal error (2 for a wrong argument), else ``None``."""
    if "journal._errors" not in sys.modules:
        return None  # the journal was never imported: the error is not one of its own
    from journal import (
        CheckpointNotFound,
        HorizonError,
        InvalidArgument,
        JournalError,
        SessionNotFound,
    )

    if isinstance(exc, InvalidArgument | HorizonError | SessionNotFound | CheckpointNotFound):
        return EXIT_USAGE
    if isinstance(exc, JournalError):
        return EXIT_PROBLEM
    return None


if __name__ == "__main__":
    run()
