"""The model parts of ``SessionSaved`` and ``CheckpointCreated`` payloads,
decoded by their schema version: 4 through the typed msgspec decoders of
``journal._wire``, 1-3 through ``journal._wire_v3``. Loads, snapshots of the
store's bases, ``agcx verify`` and the tools all read them here.
"""

from __future__ import annotations

from typing import Any

from journal._dictionary import DictionaryCache
from journal._errors import CorruptPayload
from journal._events import unpack_blob, unpack_blob_bytes
from journal._model import (
    ConversationContext,
    ConversationSnapshot,
    MessageSnapshot,
    SessionState,
)
from journal._wire import ModeHistory, decode
from journal._wire_v3 import (
    context_from_wire,
    conversation_from_wire,
    messages_from_wire,
    mode_history_from_wire,
    state_from_wire,
)

__all__ = [
    "MESSAGES",
    "checkpoint_of",
    "context_of",
    "conversation_of",
    "messages_of",
    "modes_of",
    "state_of",
]

MESSAGES = tuple[MessageSnapshot, ...]


def messages_of(
    event: dict[str, Any], where: str, dictionaries: DictionaryCache | None
) -> tuple[MessageSnapshot, ...]:
    """The messages a ``SessionSaved`` carries (``"msgs"``)."""
    if event.get("v", 1) >= 4:
        return decode(unpack_blob_bytes(event["msgs"], where, dictionaries), MESSAGES, where)
    return messages_from_wire(unpack_blob(event["msgs"], where, dictionaries))


def context_of(v: int, stored: Any) -> ConversationContext:
    """A ``"cx"`` value written with schema version ``v``."""
    if v >= 4:
        return decode(_bin(stored), ConversationContext, "conversation context")
    return context_from_wire(stored)


def modes_of(v: int, stored: Any) -> ModeHistory:
    """A ``"mh"`` value written with schema version ``v``."""
    if v >= 4:
        return decode(_bin(stored), ModeHistory, "mode history")
    return mode_history_from_wire(stored)


def state_of(v: int, stored: Any) -> SessionState:
    """A ``"st"`` value written with schema version ``v``."""
    if v >= 4:
        return decode(_bin(stored), SessionState, "session state")
    return state_from_wire(stored)


def conversation_of(v: int, blob: Any, where: str) -> ConversationSnapshot:
    """A ``"conv"`` blob written with schema version ``v``."""
    if v >= 4:
        conv: ConversationSnapshot = decode(
            unpack_blob_bytes(blob, where), ConversationSnapshot, where
        )
        return conv
    return conversation_from_wire(unpack_blob(blob, where))


def checkpoint_of(event: dict[str, Any], where: str) -> tuple[ConversationSnapshot, SessionState]:
    """The conversation and state a ``CheckpointCreated`` carries."""
    v = event.get("v", 1)
    return conversation_of(v, event["conv"], where), state_of(v, event["st"])


def _bin(stored: Any) -> bytes:
    if type(stored) is not bytes:
        raise CorruptPayload(f"expected msgpack bytes, got {type(stored).__name__}")
    return stored
