"""How the command line shows things with rich: tables that fit one screen,
transcripts, progress bars. Plain lines and JSON are in :mod:`tools._lines`
(re-exported here), which imports no rich.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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
)
from tools._lines import (
    event_row,
    fmt_bytes,
    fmt_ns,
    fmt_short,
    fmt_time,
    jsonable,
    print_json,
    short_id,
)

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
    "render_messages",
    "sessions_table",
    "short_id",
]

_TOOL_OUTPUT_LINES = 12


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


def _text_of(content: Sequence[Any] | str) -> str:
    if isinstance(content, str):  # an input message's plain-string content
        return content
    parts = []
    for c in content:
        if isinstance(c, InputText | OutputText):
            parts.append(c.text)
        elif isinstance(c, InputImage):
            parts.append(f"[image {(c.image_url or c.file_id or '')[:60]}]")
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
    # The head says what ran, the tail how it ended (a test summary, an error).
    head, tail = _TOOL_OUTPUT_LINES // 2 - 1, _TOOL_OUTPUT_LINES // 2
    hidden = len(lines) - head - tail
    return "\n".join(
        [*lines[:head], f"… {hidden} lines folded (--full shows them) …", *lines[-tail:]]
    )


def _tool_output(output: str | Sequence[Any]) -> str:
    """A function call output's text (the common {"output": ...} wrapper unwrapped)."""
    if not isinstance(output, str):  # content items
        return _text_of(output)
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


# Text that uses Markdown: code, emphasis, headings, quotes, links, tables, lists.
_MARKDOWN = re.compile(r"[`*_#>|]|\[.*\]\(|^\s*(?:[-+]|\d+\.)\s", re.MULTILINE)

_ROLE_STYLE = {"user": "bold cyan", "assistant": "bold green", "system": "bold magenta"}


def render_conversation(conv: ConversationSnapshot, *, full: bool = False) -> RenderableType:
    """A conversation as readable blocks: roles, reasoning, tool calls and their output."""
    return Group(*render_messages(conv.messages, full=full))


def render_messages(
    messages: Sequence[MessageSnapshot], *, full: bool = False
) -> Iterator[RenderableType]:
    """The messages as readable blocks, one at a time (printed as they come, the
    first screen of a long session is out before the rest is formatted)."""
    if not messages:
        yield Text("(no messages)", style="dim")
    for m in messages:
        yield _render_message(m, full)


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
        if item.role == "assistant" and _MARKDOWN.search(body):
            # Imported when a message uses Markdown: it is slow to import.
            from rich.markdown import Markdown

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
