"""Plain output for the command line: aligned lines and JSON, streamed.

Long listings (``ls --all``, ``log``) are written as plain aligned lines, a
chunk at a time, so the first line is out at once and 10,000 rows cost little
more than formatting them; rich (``tools._render``) is kept for what fits one
screen. Nothing here imports rich.

JSON output uses stable keys (the attrs field names of the model and report
classes) and plain types: ids as strings, times as RFC 3339 strings, response
items as Responses-API JSON (:func:`journal.item_to_json`).
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import attrs

if TYPE_CHECKING:
    from journal import HistoryEntry, SessionMetadata

__all__ = [
    "Sink",
    "event_line",
    "event_row",
    "fmt_bytes",
    "fmt_ns",
    "fmt_short",
    "fmt_time",
    "jsonable",
    "print_json",
    "session_lines",
    "short_id",
    "stream_json_list",
]

class Sink(Protocol):
    """Where text goes: stdout, a pager (``tools._pager.Output``), a file."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


_CHUNK = 512  # lines per write: few system calls, and the first lines still come at once


# -- JSON ---------------------------------------------------------------------------------


def _item_types() -> tuple[type, ...]:
    from journal import (
        FunctionCall,
        FunctionCallOutput,
        LocalShellCall,
        Message,
        Reasoning,
        UnknownItem,
    )

    return (Message, Reasoning, LocalShellCall, FunctionCall, FunctionCallOutput, UnknownItem)


def jsonable(v: Any) -> Any:
    """``v`` as plain JSON data (stable keys: attrs field names)."""
    t = type(v)
    if t is str or t is int or t is bool or t is float or v is None:
        return v
    convert = _BY_TYPE.get(t)
    if convert is not None:
        return convert(v)
    return _jsonable_new_type(v)


def _list(v: Any) -> Any:
    return [jsonable(x) for x in v]


def _map(v: Any) -> Any:
    return {str(jsonable(k)): jsonable(x) for k, x in v.items()}


# Converters by exact type, filled as types are met: 10,000 sessions turn into
# JSON with one dict lookup per value instead of a chain of isinstance checks.
_BY_TYPE: dict[type, Any] = {
    datetime: datetime.isoformat,
    UUID: str,
    timedelta: timedelta.total_seconds,
    list: _list,
    tuple: _list,
    dict: _map,
}


def _enum_value(v: Any) -> Any:
    return jsonable(v.value)


def _fields_of(names: tuple[str, ...]) -> Any:
    def convert(v: Any) -> Any:
        return {name: jsonable(getattr(v, name)) for name in names}

    return convert


def _jsonable_new_type(v: Any) -> Any:
    t = type(v)
    if isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, UUID):
        return str(v)
    if isinstance(v, enum.Enum):
        _BY_TYPE[t] = _enum_value
        return jsonable(v.value)
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    if isinstance(v, _item_types()):
        from journal import item_to_json

        return item_to_json(v)  # type: ignore[arg-type]
    to_json = getattr(v, "to_json", None)
    if callable(to_json):
        return jsonable(to_json())
    if attrs.has(t):
        _BY_TYPE[t] = _fields_of(tuple(f.name for f in attrs.fields(t)))
        return _BY_TYPE[t](v)
    fields = getattr(t, "__struct_fields__", None)
    if fields is not None:  # a msgspec Struct
        _BY_TYPE[t] = _fields_of(tuple(fields))
        return _BY_TYPE[t](v)
    if isinstance(v, Mapping):
        return _map(v)
    if isinstance(v, list | tuple | set | frozenset):
        return _list(v)
    return str(v)


def print_json(doc: Any, out: Sink | None = None) -> None:
    """Write one JSON document (indented) to ``out`` (default stdout)."""
    stream = out or sys.stdout
    stream.write(json.dumps(jsonable(doc), indent=2, ensure_ascii=False) + "\n")
    stream.flush()


def stream_json_list(out: Sink, head: Mapping[str, Any], key: str, items: Iterable[Any]) -> None:
    """One JSON document: ``head``'s keys, then ``key`` holding ``items`` as an
    array written one item per line as they come (nothing is built whole)."""
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    opening = dumps(dict(head))[:-1]
    out.write(f"{opening}{', ' if head else ''}{dumps(key)}: [")
    sep = "\n"
    buf: list[str] = []
    for item in items:
        buf.append(sep + dumps(jsonable(item)))
        sep = ",\n"
        if len(buf) >= _CHUNK:
            out.write("".join(buf))
            buf = []
    buf.append("\n]}\n" if sep != "\n" else "]}\n")
    out.write("".join(buf))
    out.flush()


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
    from journal._log import from_ns

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


# -- aligned lines ------------------------------------------------------------------------


def _cut(line: str, width: int | None) -> str:
    if width is None or len(line) <= width:
        return line
    return line[: max(0, width - 1)] + "…"


def session_lines(
    out: Sink, metas: Sequence[SessionMetadata], *, width: int | None = None
) -> None:
    """Sessions as aligned lines: id, last accessed, messages, mode, title [tags].

    Lines are cut at ``width`` (a terminal's); piped, they are whole.
    """
    msgs_w = max([4, *(len(str(m.message_count)) for m in metas)])
    mode_w = max([4, *(len(m.current_mode.value) for m in metas)])
    header = (
        f"{'id':<8}  {'last accessed':<16}  {'msgs':>{msgs_w}}  {'mode':<{mode_w}}  title [tags]"
    )
    buf = [_cut(header, width)]
    for m in metas:
        star = "★ " if m.is_favorite else ""
        tags = f"  [{', '.join(m.tags)}]" if m.tags else ""
        line = (
            f"{m.id.hex[:8]}  {fmt_short(m.last_accessed, seconds=False):<16}  "
            f"{m.message_count:>{msgs_w}}  {m.current_mode.value:<{mode_w}}  {star}{m.title}{tags}"
        )
        buf.append(_cut(line, width))
        if len(buf) >= _CHUNK:
            out.write("\n".join(buf) + "\n")
            buf = []
    if buf:
        out.write("\n".join(buf) + "\n")


def event_row(e: HistoryEntry) -> tuple[str, str, str, str, str]:
    return (str(e.seq), fmt_short(e.ts), e.event, short_id(e.session_id), e.summary)


def event_line(seq: int, when: str, event: str, session: str, summary: str) -> str:
    """One audit-trail line: seq, local time, event, session, summary."""
    return f"{seq:>7}  {when}  {event:<18} {session:<8}  {summary}"
