"""How the command line shows things: JSON documents, tables, transcripts.

JSON output uses stable keys (the attrs field names of the model and report
classes) and plain types: ids as strings, times as RFC 3339 strings, response
items as Responses-API JSON (:func:`journal.item_to_json`).
"""

from __future__ import annotations

import contextlib
import enum
import json
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TextIO
from uuid import UUID

import attrs
from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from journal import (
    ConversationSnapshot,
    FunctionCall,
    FunctionCallOutput,
    HistoryEntry,
    InputImage,
    InputText,
    JournalError,
    LocalShellCall,
    Message,
    MessageSnapshot,
    OutputText,
    Reasoning,
    ResponseItem,
    SessionMetadata,
    SessionState,
    UnknownItem,
    item_from_json,
    item_to_json,
)
from journal._log import from_ns

__all__ = [
    "event_row",
    "fmt_bytes",
    "fmt_ns",
    "fmt_short",
    "fmt_time",
    "history_table",
    "jsonable",
    "markdown_transcript",
    "print_json",
    "progress_bar",
    "render_conversation",
    "sessions_table",
    "short_id",
]

_ITEMS = (Message, Reasoning, LocalShellCall, FunctionCall, FunctionCallOutput, UnknownItem)
_TOOL_OUTPUT_LINES = 16


# -- JSON ---------------------------------------------------------------------------------


def jsonable(v: Any) -> Any:
    """``v`` as plain JSON data (stable keys: attrs field names)."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, _ITEMS):
        return item_to_json(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, UUID):
        return str(v)
    if isinstance(v, enum.Enum):
        return jsonable(v.value)
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    to_json = getattr(v, "to_json", None)
    if callable(to_json):
        return jsonable(to_json())
    if attrs.has(type(v)):
        return {f.name: jsonable(getattr(v, f.name)) for f in attrs.fields(type(v))}
    if isinstance(v, Mapping):
        return {str(jsonable(k)): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [jsonable(x) for x in v]
    return str(v)


def print_json(doc: Any, out: TextIO | None = None) -> None:
    """Write one JSON document (indented) to stdout."""
    stream = out or sys.stdout
    stream.write(json.dumps(jsonable(doc), indent=2, ensure_ascii=False) + "\n")
    stream.flush()


# -- small formats ------------------------------------------------------------------------


def fmt_time(dt: datetime | None, *, seconds: bool = True) -> str:
    """A time in the local zone, with its offset (copy-pasteable as a WHEN)."""
    if dt is None:
        return "-"
    local = dt.astimezone()
    return local.isoformat(timespec="seconds" if seconds else "minutes")


def fmt_short(dt: datetime | None, *, seconds: bool = True) -> str:
    """A time in the local zone for a table cell: ``2024-05-01 10:42:07``."""
    if dt is None:
        return "-"
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def fmt_ns(ns: int) -> str:
    return fmt_time(from_ns(ns)) if ns else "-"


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def short_id(sid: UUID | None) -> str:
    """The first 8 hex digits of an id (what `show`, `log --session` accept)."""
    return "-" if sid is None else sid.hex[:8]


# -- tables -------------------------------------------------------------------------------


def _table(title: str | None) -> Table:
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold",
    )


def sessions_table(metas: Sequence[SessionMetadata], title: str | None = None) -> Table:
    """Sessions as a table: title, id prefix, messages, mode, tags, last accessed (local time)."""
    t = _table(title)
    t.add_column("title", overflow="fold", ratio=3)
    t.add_column("id", no_wrap=True)
    t.add_column("msgs", justify="right", no_wrap=True)
    t.add_column("mode", no_wrap=True)
    t.add_column("tags", overflow="fold", ratio=1)
    t.add_column("last accessed", no_wrap=True)
    for m in metas:
        star = "★ " if m.is_favorite else ""
        t.add_row(
            Text(star + m.title),
            short_id(m.id),
            str(m.message_count),
            m.current_mode.value,
            ", ".join(m.tags),
            fmt_short(m.last_accessed, seconds=False),
        )
    return t


def event_row(e: HistoryEntry) -> tuple[str, str, str, str, str]:
    return (str(e.seq), fmt_short(e.ts), e.event, short_id(e.session_id), e.summary)


def history_table(entries: Sequence[HistoryEntry], title: str | None = None) -> Table:
    """The audit trail: seq, time (local), event, session, summary."""
    t = _table(title)
    t.add_column("seq", justify="right", no_wrap=True)
    t.add_column("time", no_wrap=True)
    t.add_column("event", no_wrap=True)
    t.add_column("session", no_wrap=True)
    t.add_column("summary", overflow="fold")
    for e in entries:
        t.add_row(*(Text(c) for c in event_row(e)))
    return t


# -- conversations ------------------------------------------------------------------------


def _text_of(content: Sequence[Any]) -> str:
    parts = []
    for c in content:
        if isinstance(c, InputText | OutputText):
            parts.append(c.text)
        elif isinstance(c, InputImage):
            parts.append(f"[image {c.image_url[:60]}]")
        else:
            parts.append(f"[{type(c).__name__}]")
    return "\n".join(parts)


def _call_text(f: FunctionCall) -> str:
    """A function call's arguments, as a shell line when they are one."""
    try:
        args = json.loads(f.arguments)
    except ValueError:
        return f.arguments
    if isinstance(args, dict):
        cmd = args.get("command") or args.get("cmd")
        if isinstance(cmd, list) and all(isinstance(x, str) for x in cmd):
            return "$ " + shlex.join(cmd)
        if isinstance(cmd, str):
            return "$ " + cmd
        lines = []
        for k, v in args.items():
            text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
            lines.append(f"{k}:\n{text.rstrip()}" if "\n" in text else f"{k}: {text}")
        return "\n".join(lines)
    return json.dumps(args, indent=2, ensure_ascii=False)


def _clip(text: str, full: bool) -> str:
    lines = text.splitlines()
    if full or len(lines) <= _TOOL_OUTPUT_LINES:
        return text
    kept = [*lines[: _TOOL_OUTPUT_LINES - 2], "…", lines[-1]]
    return "\n".join(kept) + f"\n[{len(lines) - _TOOL_OUTPUT_LINES + 1} lines not shown]"


def _tool_output(output: str) -> str:
    """A function call output's text (the common {"output": ...} wrapper unwrapped)."""
    try:
        data = json.loads(output)
    except ValueError:
        return output
    if isinstance(data, dict) and isinstance(data.get("output"), str):
        return str(data["output"])
    return output


def _code(text: str) -> Text:
    """Tool text: long lines are cut at the edge, not wrapped (it is usually code)."""
    return Text(text.rstrip("\n"), no_wrap=True, overflow="ellipsis")


_ROLE_STYLE = {"user": "bold cyan", "assistant": "bold green", "system": "bold magenta"}


def render_conversation(conv: ConversationSnapshot, *, full: bool = False) -> RenderableType:
    """A conversation as readable blocks: roles, reasoning, tool calls and their output."""
    blocks: list[RenderableType] = []
    for m in conv.messages:
        blocks.append(_render_message(m, full))
    if not blocks:
        blocks.append(Text("(no messages)", style="dim"))
    return Group(*blocks)


def _heading(label: str, style: str, m: MessageSnapshot) -> Text:
    t = Text(label, style=style)
    t.append(f"  turn {m.turn_index} · {fmt_time(m.timestamp)}", style="dim")
    return t


def readable(item: ResponseItem) -> ResponseItem:
    """For display only: an unknown item that reads as a known one once the
    Agents SDK's shorthands are spelled out (a message without ``type``, a
    string ``content``, keys the model does not keep) is shown as that item.
    What is stored and exported stays verbatim."""
    if not isinstance(item, UnknownItem) or not isinstance(item.data, dict):
        return item
    d = dict(item.data)
    if "type" not in d and "role" in d:
        d["type"] = "message"
    if d.get("type") == "message" and isinstance(d.get("content"), str):
        kind = "output_text" if d.get("role") == "assistant" else "input_text"
        d["content"] = [{"type": kind, "text": d["content"]}]
    try:
        return item_from_json(d)
    except JournalError:
        return item


def _render_message(m: MessageSnapshot, full: bool) -> RenderableType:
    item = readable(m.item)
    if isinstance(item, Message):
        body = _text_of(item.content)
        style = _ROLE_STYLE.get(item.role, "bold")
        text: RenderableType = Text(body)
        if item.role == "assistant":
            from rich.markdown import Markdown  # imported when needed: it is slow to import

            text = Markdown(body)
        return Group(_heading(item.role, style, m), text, Text(""))
    if isinstance(item, Reasoning):
        summary = "\n".join(getattr(s, "text", "") for s in item.summary) or "(no summary)"
        return Group(_heading("reasoning", "italic yellow", m), Text(summary, "italic"), Text(""))
    if isinstance(item, FunctionCall):
        return Group(
            _heading(f"tool call {item.name}", "bold blue", m),
            Panel(_code(_clip(_call_text(item), full)), border_style="blue", expand=False),
        )
    if isinstance(item, FunctionCallOutput):
        return Group(
            _heading("tool output", "bold blue", m),
            Panel(_code(_clip(_tool_output(item.output), full)), border_style="dim", expand=False),
        )
    if isinstance(item, LocalShellCall):
        line = "$ " + shlex.join(item.action.command)
        return Group(
            _heading(f"shell ({item.status})", "bold blue", m),
            Panel(Text(line), border_style="blue", expand=False),
        )
    data = json.dumps(jsonable(item), ensure_ascii=False)[:400]
    return Group(_heading("unknown item", "bold red", m), Text(data), Text(""))


def markdown_transcript(
    meta: SessionMetadata, conv: ConversationSnapshot, state: SessionState
) -> str:
    """A session as a Markdown document: metadata, then the conversation."""
    out = [f"# {meta.title or '(untitled)'}", ""]
    facts = [
        ("id", str(meta.id)),
        ("created", meta.created_at.isoformat()),
        ("updated", meta.updated_at.isoformat()),
        ("mode", meta.current_mode.value),
        ("model", meta.model or "-"),
        ("tags", ", ".join(meta.tags) or "-"),
        ("favorite", "yes" if meta.is_favorite else "no"),
        ("messages", str(meta.message_count)),
    ]
    out += [f"- **{k}**: {v}" for k, v in facts]
    if meta.checkpoints:
        out += ["", "## Checkpoints", ""]
        out += [
            f"- `{c.id.hex[:8]}` {c.name or '(unnamed)'} — {c.created_at.isoformat()}, "
            f"message {c.message_index}"
            for c in meta.checkpoints
        ]
    out += ["", "## Conversation", ""]
    for m in conv.messages:
        item = readable(m.item)
        when = m.timestamp.isoformat()
        if isinstance(item, Message):
            out += [f"### {item.role} (turn {m.turn_index}, {when})", "", _text_of(item.content)]
        elif isinstance(item, Reasoning):
            summary = "\n".join(getattr(s, "text", "") for s in item.summary)
            out += [f"### reasoning (turn {m.turn_index})", "", f"> {summary}"]
        elif isinstance(item, FunctionCall):
            out += [f"### tool call `{item.name}` ({item.call_id})", "", _fence(_call_text(item))]
        elif isinstance(item, FunctionCallOutput):
            out += [f"### tool output ({item.call_id})", "", _fence(_tool_output(item.output))]
        elif isinstance(item, LocalShellCall):
            line = "$ " + shlex.join(item.action.command)
            out += [f"### shell ({item.status})", "", _fence(line)]
        else:
            out += ["### unknown item", "", _fence(json.dumps(jsonable(item)), "json")]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _fence(text: str, lang: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{lang}\n{text}\n{fence}"


# -- progress -----------------------------------------------------------------------------


@contextlib.contextmanager
def progress_bar(
    description: str, *, unit_bytes: bool = True
) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when stderr is a terminal; yields an update(done, total)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if unit_bytes:
        columns.append(DownloadColumn())
    else:
        columns.append(MofNCompleteColumn())
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as p:
        task = p.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            p.update(task, completed=done, total=total)

        yield update
