"""The event vocabulary: type codes and payload layouts. No I/O here.

Every payload is a msgpack map with short string keys and a schema version
under ``"v"``; decoders read what they know with defaults and ignore the
rest, so an event written by an older version stays readable (``upcast``
turns an old layout into the current one).

Message lists inside ``SessionSaved`` and ``CheckpointCreated`` are stored as
a nested msgpack blob (``"msgs"``/``"conv"`` are ``bin``): replaying the log into
the session index decodes the small outer map only, never the messages.
"""

from __future__ import annotations

import enum
from typing import Any

import msgpack
import zstandard

from journal._codec import BLOB_CAP, RAW, ZSTD_MAGIC, Codec, raw_size, unpack_bounded
from journal._dictionary import (
    DICT_BLOB,
    REF_SIZE,
    Dictionary,
    DictionaryCache,
    blob_reference,
)
from journal._errors import CorruptPayload
from journal._segment import Record

__all__ = [
    "EVENT_NAMES",
    "SCHEMA_VERSION",
    "EventType",
    "blob_dictionary",
    "blob_of",
    "event_name",
    "pack_blob",
    "stored_raw_size",
    "unpack_blob",
    "unpack_blob_bytes",
    "upcast",
]

# 2: a delta ``SessionSaved`` may carry only the metadata keys that changed
# (``"md"``) instead of the whole map (``"meta"``), and no ``"cid"``.
# 3: a ``SessionSaved`` (either layout) whose ``"msgs"`` is a dictionary blob
# (journal/_dictionary.py); a build that knows only 2 would misread it.
# 4: ``SessionSaved`` and ``CheckpointCreated`` hold the model as msgspec
# encodes it (journal/_wire.py): the ``"msgs"``/``"conv"`` blobs, and
# ``"cx"``, ``"mh"``, ``"st"`` as msgpack ``bin`` each (decoded only for the
# newest save of a chain). Versions 1-3 hold it in short-key maps
# (journal/_wire_v3.py). Either ``SessionSaved`` layout of 2 (``"meta"`` or
# ``"md"``) and dictionary blobs of 3 are kept.
# Every other event is still written as version 1.
SCHEMA_VERSION = 4


class EventType(enum.IntEnum):
    """The u16 event type codes written in each record's clear header."""

    SESSION_SAVED = 1
    SESSION_DELETED = 2
    SESSION_PURGED = 3
    TAGS_CHANGED = 4
    FAVORITE_CHANGED = 5
    SESSION_RENAMED = 6
    SESSION_TOUCHED = 7
    CHECKPOINT_CREATED = 8
    CHECKPOINT_DELETED = 9
    LEGACY_IMPORTED = 10
    DICTIONARY_TRAINED = 11
    SESSION_FORKED = 12
    SESSION_TRUNCATED = 13
    # 16-21: graph checkpoints (journal/_graph.py, LangGraph's checkpointer)
    GRAPH_CHECKPOINT_PUT = 16
    GRAPH_WRITES_PUT = 17
    GRAPH_THREAD_DELETED = 18
    GRAPH_RUNS_DELETED = 19
    GRAPH_THREAD_COPIED = 20
    GRAPH_THREAD_PRUNED = 21
    CODEX_LINES = 24
    CODEX_IMPORTED = 25
    SECRETS_SCRUBBED = 28


EVENT_NAMES: dict[int, str] = {
    EventType.SESSION_SAVED: "SessionSaved",
    EventType.SESSION_DELETED: "SessionDeleted",
    EventType.SESSION_PURGED: "SessionPurged",
    EventType.TAGS_CHANGED: "TagsChanged",
    EventType.FAVORITE_CHANGED: "FavoriteChanged",
    EventType.SESSION_RENAMED: "SessionRenamed",
    EventType.SESSION_TOUCHED: "SessionTouched",
    EventType.CHECKPOINT_CREATED: "CheckpointCreated",
    EventType.CHECKPOINT_DELETED: "CheckpointDeleted",
    EventType.LEGACY_IMPORTED: "LegacyImported",
    EventType.DICTIONARY_TRAINED: "DictionaryTrained",
    EventType.SESSION_FORKED: "SessionForked",
    EventType.SESSION_TRUNCATED: "SessionTruncated",
    EventType.GRAPH_CHECKPOINT_PUT: "GraphCheckpointPut",
    EventType.GRAPH_WRITES_PUT: "GraphWritesPut",
    EventType.GRAPH_THREAD_DELETED: "GraphThreadDeleted",
    EventType.GRAPH_RUNS_DELETED: "GraphRunsDeleted",
    EventType.GRAPH_THREAD_COPIED: "GraphThreadCopied",
    EventType.GRAPH_THREAD_PRUNED: "GraphThreadPruned",
    EventType.CODEX_LINES: "CodexLines",
    EventType.CODEX_IMPORTED: "CodexImported",
    EventType.SECRETS_SCRUBBED: "SecretsScrubbed",
}
_BY_NAME = {v.lower(): k for k, v in EVENT_NAMES.items()}


def event_name(event_type: int) -> str:
    """The event's name, or ``Unknown(<code>)`` for a type this version does not know."""
    return EVENT_NAMES.get(event_type, f"Unknown({event_type})")


def event_type_from_name(name: str) -> int:
    """Parse ``SessionSaved`` / ``session_saved`` / ``sessionsaved`` into its code."""
    key = name.replace("_", "").replace("-", "").lower()
    if key in _BY_NAME:
        return _BY_NAME[key]
    raise ValueError(f"unknown event type {name!r}; known: {', '.join(EVENT_NAMES.values())}")


def upcast(event_type: int, payload: Any) -> dict[str, Any]:
    """Check a decoded payload's shape and bring older schema versions up to date."""
    if type(payload) is not dict:
        raise CorruptPayload(f"{event_name(event_type)} payload is not a map")
    v = payload.get("v", 1)
    if type(v) is not int or v < 1:
        raise CorruptPayload(f"{event_name(event_type)} payload has schema version {v!r}")
    if v > SCHEMA_VERSION:
        raise CorruptPayload(
            f"{event_name(event_type)} has schema version {v}; this build knows up to "
            f"{SCHEMA_VERSION} (upgrade agcx)"
        )
    # Version 2 only adds a layout of SessionSaved (see SCHEMA_VERSION) that
    # its readers tell by its keys: nothing to upcast.
    return payload


# Schema versions ``upcast`` returns as they are (it only checks them): a replay
# skips the call for these. A version that gets a real upcast leaves this set.
AS_IS_VERSIONS = frozenset(range(1, SCHEMA_VERSION + 1))


# Nested blobs are compressed on their own, so that replaying the log into the
# session index decodes a small raw map and never decompresses messages.
_BLOB_MIN_COMPRESS = 256
_blob_codec = Codec(max_payload=BLOB_CAP)
_frame_content_size = zstandard.frame_content_size
_DICT_BLOB = bytes([DICT_BLOB])


def pack_blob(obj: Any) -> bytes:
    """msgpack ``obj`` (plain data, not the model) into a nested blob (see :func:`blob_of`)."""
    return blob_of(msgpack.packb(obj, use_bin_type=True))


def blob_of(data: bytes, dictionary: Dictionary | None = None) -> bytes:
    """msgpack bytes as a nested blob: compressed with ``dictionary`` or alone
    when that pays, else as they are.

    A blob is a msgpack array or map, a zstd frame or a dictionary blob; their
    first bytes differ (msgpack never starts with ``0x28`` or ``0xC1``), so the
    forms are told apart by it.
    """
    if dictionary is not None:
        packed = dictionary.pack(data)
        if packed is not None:
            return packed
    if len(data) >= _BLOB_MIN_COMPRESS:
        frame: bytes = _blob_codec._cctx().compress(data)
        if len(frame) < len(data):
            return frame
    return data


def stored_raw_size(rec: Record, event: dict[str, Any]) -> int:
    """Uncompressed bytes of a record's payload, its nested blobs included
    (read from frame headers only: nothing is decompressed)."""
    # Runs for every save of a replay: no loop, no call for a raw blob.
    payload = rec.payload
    size = len(payload) if rec.codec == RAW else raw_size(rec.codec, payload)
    msgs, conv = event.get("msgs"), event.get("conv")
    if type(msgs) is bytes:
        if msgs.startswith(ZSTD_MAGIC):
            size += _inflation(msgs)
        elif msgs.startswith(_DICT_BLOB):
            size += _inflation(msgs, REF_SIZE)
    if type(conv) is bytes and conv.startswith(ZSTD_MAGIC):
        size += _inflation(conv)
    return size


def _inflation(blob: bytes, skip: int = 0) -> int:
    """Declared minus stored size of a blob whose zstd frame starts at ``skip``
    (the frame's header only is read, not copied)."""
    try:
        declared = int(_frame_content_size(memoryview(blob)[skip:]))
    except zstandard.ZstdError:
        return 0  # a damaged header: counted as stored
    return declared - len(blob) if declared >= 0 else 0  # no declared size: as stored


def unpack_blob(blob: object, what: str, dictionaries: DictionaryCache | None = None) -> Any:
    """Decode a nested blob within bounds (the zstd frame's size checked first);
    a dictionary blob takes its dictionary from ``dictionaries``."""
    return unpack_bounded(unpack_blob_bytes(blob, what, dictionaries))


def unpack_blob_bytes(
    blob: object, what: str, dictionaries: DictionaryCache | None = None
) -> bytes:
    """The msgpack bytes of a nested blob, decompressed within bounds."""
    if type(blob) is not bytes:
        raise CorruptPayload(f"{what}: expected a msgpack blob, got {type(blob).__name__}")
    try:
        if blob[:4] == ZSTD_MAGIC:
            blob = _blob_codec.decompress(blob)
        elif blob[:1] == _DICT_BLOB:
            if dictionaries is None:
                raise CorruptPayload("a dictionary blob where none may be")
            blob = dictionaries.unpack(blob)
    except CorruptPayload as exc:
        raise CorruptPayload(f"{what}: {exc}") from exc
    return blob


def blob_dictionary(event: dict[str, Any]) -> int | None:
    """The seq of the dictionary a ``SessionSaved`` event's messages need, if any."""
    msgs = event.get("msgs")
    return blob_reference(msgs) if type(msgs) is bytes else None
