"""Reading event schemas 1-3: the model in its short-key layout.

Records written before schema 4 hold the model as maps with short keys and
tags of their own. Each decoder here renames one layout into the schema-4
shape (Python, per value) and hands the whole result to msgspec, which
checks and builds the model in C. Nothing writes this layout any more; the
writer tests use is ``tests/v3_wire.py``.

Messages (``"msgs"`` blob, and ``"conv"``'s ``"m"``): each
``{"it": item, "ts": µs, "ti": turn_index, "md": metadata}``.

* items: ``"t"`` is ``"m"`` message {``"r"`` role, ``"c"`` content, ``"i"``
  id}, ``"r"`` reasoning {``"i"``, ``"s"`` summary, ``"e"`` encrypted
  content, ``"c"``}, ``"sh"`` local_shell_call {``"st"`` status, ``"a"``
  {``"cm"`` command, ``"to"`` timeout_ms, ``"wd"`` working directory},
  ``"i"``, ``"ci"`` call id}, ``"fc"`` function_call {``"n"``, ``"a"``
  arguments, ``"ci"``, ``"i"``}, ``"fo"`` function_call_output {``"ci"``,
  ``"o"``}, ``"?"`` unknown {``"raw"``};
* content: ``"it"``/``"ot"`` {``"x"`` text}, ``"ii"`` {``"u"`` url}, ``"?"``;
  summaries: ``"st"`` {``"x"``}, ``"?"``;
* metadata: ``"id"`` message id (always), ``"e"`` edited, ``"eh"``
  [[µs, item]...], ``"bp"`` branch point, ``"bi"`` branch id, ``"pm"``
  parent id, ``"fc"`` files {``"p"``, ``"lr"``, ``"sn"``, ``"lg"``}, ``"tc"``
  tool calls {``"n"``, ``"ms"``, ``"ok"``, ``"er"``}.

Context ``"cx"``: ``"wd"``, ``"env"``, ``"of"``, ``"ast"`` {``"f"``,
``"ns"``, ``"sz"``, ``"lu"``}, ``"emb"`` {``"n"``, ``"mo"``, ``"sz"``}. Mode
history ``"mh"``: [[mode, µs]...]. State ``"st"``: ``"cp"``, ``"so"``,
``"sel"``, ``"ex"``, ``"ap"``, ``"ps"``, ``"q"``, ``"fs"`` {``"sy"``,
``"tc"``, ``"rs"``, ``"rf"``, ``"dr"``}. Conversation (checkpoints):
``"id"``, ``"m"``, ``"cx"``, ``"mh"``. A key whose value is ``None`` reads
as absent; unknown keys are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from journal._errors import CorruptPayload, InvalidArgument
from journal._model import (
    ConversationContext,
    ConversationSnapshot,
    MessageSnapshot,
    SessionState,
)
from journal._wire import ModeHistory, _dt, _malformed

__all__ = [
    "context_from_wire",
    "conversation_from_wire",
    "messages_from_wire",
    "mode_history_from_wire",
    "state_from_wire",
]

_T = TypeVar("_T")
_INDEX = re.compile(r"`\$\[(\d+)\]")
_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def _list(v: object) -> list[Any]:
    if type(v) is not list:
        raise CorruptPayload(f"expected an array, got {type(v).__name__}")
    return v


def _map(v: object) -> dict[Any, Any]:
    if type(v) is not dict:
        raise CorruptPayload(f"expected a map, got {type(v).__name__}")
    return v


def _content(w: Any) -> dict[str, Any]:
    t = w["t"]
    if t == "it":
        return {"type": "input_text", "text": w["x"]}
    if t == "ot":
        return {"type": "output_text", "text": w["x"]}
    if t == "ii":
        return {"type": "input_image", "image_url": w["u"]}
    if t == "?":
        return {"type": "?", "data": w["raw"]}
    raise CorruptPayload(f"unknown content item tag {t!r:.40}")


def _contents(v: object) -> list[dict[str, Any]]:
    return [_content(c) for c in _list(v)]


def _summary(w: Any) -> dict[str, Any]:
    t = w["t"]
    if t == "st":
        return {"type": "summary_text", "text": w["x"]}
    if t == "?":
        return {"type": "?", "data": w["raw"]}
    raise CorruptPayload(f"unknown reasoning summary tag {t!r:.40}")


def _item(w: Any) -> dict[str, Any]:
    t = w["t"]
    if type(t) is not str:
        raise CorruptPayload(f"response item tag {t!r:.40} is not a str")
    get = w.get
    if t == "m":
        return {"type": "message", "role": w["r"], "content": _contents(w["c"]), "id": get("i")}
    if t == "fo":
        return {"type": "function_call_output", "call_id": w["ci"], "output": w["o"]}
    if t == "fc":
        return {
            "type": "function_call",
            "name": w["n"],
            "arguments": w["a"],
            "call_id": w["ci"],
            "id": get("i"),
        }
    if t == "r":
        c = get("c")
        return {
            "type": "reasoning",
            "id": w["i"],
            "summary": [_summary(s) for s in _list(w["s"])],
            "encrypted_content": get("e"),
            "content": None if c is None else _contents(c),
        }
    if t == "sh":
        a = _map(w["a"])
        return {
            "type": "local_shell_call",
            "status": w["st"],
            "action": {
                "type": "exec",
                "command": a["cm"],
                "timeout_ms": a.get("to"),
                "working_directory": a.get("wd"),
            },
            "id": get("i"),
            "call_id": get("ci"),
        }
    if t == "?":
        return {"type": "?", "data": w["raw"]}
    # UnknownItem covers unknown *input* types: an unknown wire tag means damage.
    raise CorruptPayload(f"unknown response item tag {t!r:.40} on the wire")


def _message_metadata(w: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"message_id": w["id"]}
    if len(w) == 1:
        return out  # most messages: just the id
    get = w.get
    eh = get("eh")
    if eh is not None:
        pairs = []
        for p in _list(eh):
            t, i = _list(p)
            pairs.append((_dt(t), _item(_map(i))))
        out["edit_history"] = pairs
    for key, field in (("e", "edited"), ("bp", "branch_point")):
        v = get(key)
        if v is not None:
            out[field] = v
    out["branch_id"] = get("bi")
    out["parent_message_id"] = get("pm")
    fc = get("fc")
    if fc is not None:
        out["file_context"] = [
            {
                "path": f["p"],
                "line_range": f.get("lr"),
                "snippet": f.get("sn"),
                "language": f.get("lg"),
            }
            for f in map(_map, _list(fc))
        ]
    tc = get("tc")
    if tc is not None:
        out["tool_calls"] = [
            {
                "tool_name": t["n"],
                "execution_time_ms": t["ms"],
                "success": t["ok"],
                "error": t.get("er"),
            }
            for t in map(_map, _list(tc))
        ]
    return out


def _snapshot(w: Any) -> dict[str, Any]:
    return {
        "item": _item(_map(w["it"])),
        "timestamp": _dt(w["ts"]),
        "turn_index": w["ti"],
        "metadata": _message_metadata(_map(w["md"])),
    }


def _convert(value: object, typ: type[_T] | Any) -> _T:
    # msgspec checks every field's type in C; a model normaliser may refuse too.
    out: _T = msgspec.convert(value, typ)
    return out


_GUARDED = (CorruptPayload, msgspec.ValidationError, InvalidArgument, *_ERRORS)


def _guard(what: str, decode: Callable[[Any], _T], w: object) -> _T:
    try:
        return decode(w)
    except _GUARDED as exc:
        raise _malformed(what, exc) from exc


def messages_from_wire(w: object) -> tuple[MessageSnapshot, ...]:
    """Messages in the schema 1-3 layout; raises :class:`CorruptPayload`."""
    out: list[dict[str, Any]] = []
    try:
        for m in _list(w):
            out.append(_snapshot(_map(m)))
    except _GUARDED as exc:
        raise _malformed(f"message #{len(out)}", exc) from exc
    try:
        return _convert(out, tuple[MessageSnapshot, ...])
    except msgspec.ValidationError as exc:
        # "... - at `$[3].item.role`": name the message as the loop above does.
        at = _INDEX.search(str(exc))
        raise _malformed(f"message #{at.group(1) if at else '?'}", exc) from exc
    except InvalidArgument as exc:
        raise _malformed("message", exc) from exc


def _context(w: Any) -> dict[str, Any]:
    w = _map(w)
    out: dict[str, Any] = {
        "working_directory": w.get("wd", ""),
        "environment_variables": w.get("env", {}),
        "open_files": w.get("of", []),
    }
    a = w.get("ast")
    if a is not None:
        a = _map(a)
        out["ast_index_state"] = {
            "indexed_files": a.get("f", []),
            "total_symbols": a["ns"],
            "cache_size_bytes": a["sz"],
            "last_update": _dt(a["lu"]),
        }
    e = w.get("emb")
    if e is not None:
        e = _map(e)
        out["embedding_cache"] = {
            "cached_chunks": e["n"],
            "model": e["mo"],
            "cache_size_bytes": e["sz"],
        }
    return out


def context_from_wire(w: object) -> ConversationContext:
    """A context in the schema 1-3 layout; raises :class:`CorruptPayload`."""
    return _guard("conversation context", lambda x: _convert(_context(x), ConversationContext), w)


def _modes(w: object) -> list[tuple[Any, datetime]]:
    out = []
    for p in _list(w):
        m, t = _list(p)
        out.append((m, _dt(t)))
    return out


def mode_history_from_wire(w: object) -> ModeHistory:
    """A mode history in the schema 1-3 layout; raises :class:`CorruptPayload`."""
    return _guard("mode history", lambda x: _convert(_modes(x), ModeHistory), w)


def _state(w: Any) -> dict[str, Any]:
    w = _map(w)
    out: dict[str, Any] = {
        "cursor_position": w.get("cp", 0),
        "scroll_offset": w.get("so", 0),
        "selected_message": w.get("sel"),
        "expanded_messages": w.get("ex", []),
        "active_panel": w.get("ap", ""),
        "panel_sizes": w.get("ps", {}),
        "search_query": w.get("q"),
    }
    fw = w.get("fs")
    if fw is not None:
        fw = _map(fw)
        dr = fw.get("dr")
        if dr is not None:
            start, end = _list(dr)
            dr = (_dt(start), _dt(end))
        out["filter_settings"] = {
            "show_system": fw.get("sy", False),
            "show_tool_calls": fw.get("tc", True),
            "show_reasoning": fw.get("rs", True),
            "role_filter": fw.get("rf"),
            "date_range": dr,
        }
    return out


def state_from_wire(w: object) -> SessionState:
    """A session state in the schema 1-3 layout; raises :class:`CorruptPayload`."""
    return _guard("session state", lambda x: _convert(_state(x), SessionState), w)


def _conversation(w: Any) -> dict[str, Any]:
    w = _map(w)
    cx = w.get("cx")
    return {
        "id": w["id"],
        "messages": [_snapshot(_map(m)) for m in _list(w.get("m", []))],
        "context": {} if cx is None else _context(cx),
        "mode_history": _modes(w.get("mh", [])),
    }


def conversation_from_wire(w: object) -> ConversationSnapshot:
    """A whole conversation in the schema 1-3 layout; raises :class:`CorruptPayload`."""
    return _guard("conversation", lambda x: _convert(_conversation(x), ConversationSnapshot), w)
