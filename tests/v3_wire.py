"""A writer of the schema 1-3 short-key layout (journal/_wire_v3.py reads it).

Nothing in the journal writes this layout any more; tests use this to make
old records and check that they still read the same. The encoders are the
ones the schema-3 release used (fields the layout has no key for are not
written).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from journal._model import (
    ContentItem,
    ConversationContext,
    ConversationSnapshot,
    FileContext,
    FunctionCall,
    FunctionCallOutput,
    InputImage,
    InputText,
    LocalShellCall,
    Message,
    MessageMetadata,
    MessageSnapshot,
    OperatingMode,
    OutputText,
    Reasoning,
    ReasoningSummary,
    ResponseItem,
    SessionState,
    SummaryText,
    ToolCallMetadata,
    UnknownItem,
)
from journal._wire import datetime_to_wire


def _content_to_wire(c: ContentItem) -> dict[str, Any]:
    tc = type(c)
    if tc is InputText:
        return {"t": "it", "x": c.text}  # type: ignore[union-attr]
    if tc is OutputText:
        return {"t": "ot", "x": c.text}  # type: ignore[union-attr]
    if tc is InputImage:
        return {"t": "ii", "u": c.image_url}  # type: ignore[union-attr]
    return {"t": "?", "raw": c.data}  # type: ignore[union-attr]


def _summary_to_wire(s: ReasoningSummary) -> dict[str, Any]:
    if type(s) is SummaryText:
        return {"t": "st", "x": s.text}
    return {"t": "?", "raw": s.data}  # type: ignore[union-attr]


def _message_to_wire(m: Message) -> dict[str, Any]:
    w: dict[str, Any] = {"t": "m", "r": m.role, "c": [_content_to_wire(c) for c in m.content]}
    if m.id is not None:
        w["i"] = m.id
    return w


def _reasoning_to_wire(r: Reasoning) -> dict[str, Any]:
    w: dict[str, Any] = {"t": "r", "i": r.id, "s": [_summary_to_wire(s) for s in r.summary]}
    if r.encrypted_content is not None:
        w["e"] = r.encrypted_content
    if r.content is not None:
        w["c"] = [_content_to_wire(c) for c in r.content]
    return w


def _shell_to_wire(s: LocalShellCall) -> dict[str, Any]:
    a = s.action
    aw: dict[str, Any] = {"cm": list(a.command)}
    if a.timeout_ms is not None:
        aw["to"] = a.timeout_ms
    if a.working_directory is not None:
        aw["wd"] = a.working_directory
    w: dict[str, Any] = {"t": "sh", "st": s.status, "a": aw}
    if s.id is not None:
        w["i"] = s.id
    if s.call_id is not None:
        w["ci"] = s.call_id
    return w


def _function_call_to_wire(f: FunctionCall) -> dict[str, Any]:
    w: dict[str, Any] = {"t": "fc", "n": f.name, "a": f.arguments, "ci": f.call_id}
    if f.id is not None:
        w["i"] = f.id
    return w


def _function_output_to_wire(f: FunctionCallOutput) -> dict[str, Any]:
    return {"t": "fo", "ci": f.call_id, "o": f.output}


def _unknown_to_wire(u: UnknownItem) -> dict[str, Any]:
    return {"t": "?", "raw": u.data}


_ITEM_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    Message: _message_to_wire,
    Reasoning: _reasoning_to_wire,
    LocalShellCall: _shell_to_wire,
    FunctionCall: _function_call_to_wire,
    FunctionCallOutput: _function_output_to_wire,
    UnknownItem: _unknown_to_wire,
}


def _item_to_wire(item: ResponseItem) -> dict[str, Any]:
    return _ITEM_ENCODERS[type(item)](item)


def _file_context_to_wire(f: FileContext) -> dict[str, Any]:
    w: dict[str, Any] = {"p": f.path}
    if f.line_range is not None:
        w["lr"] = list(f.line_range)
    if f.snippet is not None:
        w["sn"] = f.snippet
    if f.language is not None:
        w["lg"] = f.language
    return w


def _tool_call_to_wire(t: ToolCallMetadata) -> dict[str, Any]:
    w: dict[str, Any] = {"n": t.tool_name, "ms": t.execution_time_ms, "ok": t.success}
    if t.error is not None:
        w["er"] = t.error
    return w


def _message_metadata_to_wire(m: MessageMetadata) -> dict[str, Any]:
    w: dict[str, Any] = {"id": m.message_id.int.to_bytes(16, "big")}  # == .bytes, cheaper
    if m.edited:
        w["e"] = True
    if m.edit_history:
        w["eh"] = [[datetime_to_wire(t), _item_to_wire(i)] for t, i in m.edit_history]
    if m.branch_point:
        w["bp"] = True
    if m.branch_id is not None:
        w["bi"] = m.branch_id.bytes
    if m.parent_message_id is not None:
        w["pm"] = m.parent_message_id.bytes
    if m.file_context:
        w["fc"] = [_file_context_to_wire(f) for f in m.file_context]
    if m.tool_calls:
        w["tc"] = [_tool_call_to_wire(t) for t in m.tool_calls]
    return w


def _snapshot_to_wire(m: MessageSnapshot) -> dict[str, Any]:
    return {
        "it": _ITEM_ENCODERS[type(m.item)](m.item),
        "ts": datetime_to_wire(m.timestamp),
        "ti": m.turn_index,
        "md": _message_metadata_to_wire(m.metadata),
    }


def _context_to_wire(c: ConversationContext) -> dict[str, Any]:
    w: dict[str, Any] = {
        "wd": c.working_directory,
        "env": dict(c.environment_variables),
        "of": list(c.open_files),
    }
    a = c.ast_index_state
    if a is not None:
        w["ast"] = {
            "f": list(a.indexed_files),
            "ns": a.total_symbols,
            "sz": a.cache_size_bytes,
            "lu": datetime_to_wire(a.last_update),
        }
    e = c.embedding_cache
    if e is not None:
        w["emb"] = {"n": e.cached_chunks, "mo": e.model, "sz": e.cache_size_bytes}
    return w


def _mode_history_to_wire(mh: tuple[tuple[OperatingMode, datetime], ...]) -> list[Any]:
    return [[m._value_, datetime_to_wire(t)] for m, t in mh]


def _conversation_to_wire(c: ConversationSnapshot) -> dict[str, Any]:
    return {
        "id": c.id.bytes,
        "m": [_snapshot_to_wire(m) for m in c.messages],
        "cx": _context_to_wire(c.context),
        "mh": _mode_history_to_wire(c.mode_history),
    }


def _state_to_wire(s: SessionState) -> dict[str, Any]:
    f = s.filter_settings
    fw: dict[str, Any] = {"sy": f.show_system, "tc": f.show_tool_calls, "rs": f.show_reasoning}
    if f.role_filter is not None:
        fw["rf"] = f.role_filter
    if f.date_range is not None:
        fw["dr"] = [datetime_to_wire(f.date_range[0]), datetime_to_wire(f.date_range[1])]
    w: dict[str, Any] = {
        "cp": s.cursor_position,
        "so": s.scroll_offset,
        "ex": [u.bytes for u in s.expanded_messages],
        "ap": s.active_panel,
        "ps": dict(s.panel_sizes),
        "fs": fw,
    }
    if s.selected_message is not None:
        w["sel"] = s.selected_message.bytes
    if s.search_query is not None:
        w["q"] = s.search_query
    return w


def item_to_wire(item: ResponseItem) -> dict[str, Any]:
    return _item_to_wire(item)


def message_to_wire(m: MessageSnapshot) -> dict[str, Any]:
    return _snapshot_to_wire(m)


def messages_to_wire(messages: Iterable[MessageSnapshot]) -> list[dict[str, Any]]:
    return [_snapshot_to_wire(m) for m in messages]


def mode_history_to_wire(mh: tuple[tuple[OperatingMode, datetime], ...]) -> list[Any]:
    return _mode_history_to_wire(mh)


def context_to_wire(c: ConversationContext) -> dict[str, Any]:
    return _context_to_wire(c)


def conversation_to_wire(c: ConversationSnapshot) -> dict[str, Any]:
    return _conversation_to_wire(c)


def state_to_wire(s: SessionState) -> dict[str, Any]:
    return _state_to_wire(s)


def message_from_wire(w: Any) -> MessageSnapshot:
    """One message in the schema 1-3 layout (as ``messages_from_wire`` reads it)."""
    from journal._wire_v3 import messages_from_wire

    return messages_from_wire([w])[0]


def item_from_wire(w: Any) -> ResponseItem:
    """One response item in the schema 1-3 layout (a message's ``"it"``)."""
    import msgspec

    from journal._errors import CorruptPayload, InvalidArgument
    from journal._wire_v3 import _item, _map

    try:
        item: ResponseItem = msgspec.convert(_item(_map(w)), ResponseItem)  # type: ignore[arg-type]
        return item
    except (CorruptPayload, msgspec.ValidationError, InvalidArgument, KeyError, TypeError,
            ValueError, AttributeError, IndexError) as exc:  # fmt: skip
        raise CorruptPayload(f"malformed response item payload: {exc}") from exc
