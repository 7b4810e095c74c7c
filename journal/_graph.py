"""Graph checkpoint events (LangGraph's checkpointer on the journal): payload
layouts as msgspec Structs, no I/O and no import of LangGraph.

A graph *thread* (LangGraph's ``thread_id``) holds namespaces (``checkpoint_ns``,
``""`` for the root graph), each a set of checkpoints linked to their parents,
the pending writes stored against each checkpoint, and channel values stored
once per ``(channel, version)``. Values arrive already serialized by the
saver's serializer as an opaque ``(type, bytes)`` pair and are stored as they
are (inside the journal's compressed record); nothing here decodes them.

Every record of a thread carries :func:`thread_key` of its thread id as its
session id, so per-session filtering (``agcx log --session``) works on threads.
The layouts are in docs/FORMAT.md ("Graph checkpoint events").
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import msgspec

from journal._errors import CorruptPayload
from journal._events import EventType

__all__ = [
    "EMPTY",
    "GRAPH_EVENTS",
    "Blob",
    "CheckpointPut",
    "RunsDeleted",
    "ThreadCopied",
    "ThreadPruned",
    "ThreadTombstone",
    "Write",
    "WritesPut",
    "decode_graph_event",
    "thread_key",
    "to_payload",
]

# The namespace of thread keys: uuid5(this, thread_id) is a thread's session id.
_THREAD_NAMESPACE = uuid.UUID("6a1c3e52-8f0b-5d7e-9c1a-4b2d6e8f0a17")

# The stored type of a channel that has a version but no value in a checkpoint
# (the convention of LangGraph's own InMemorySaver): a serializer never
# produces it.
EMPTY = "empty"

Version = str | int | float


@functools.lru_cache(maxsize=4096)
def thread_key(thread_id: str) -> bytes:
    """The 16-byte session id of a thread's records (uuid5 of its id)."""
    return uuid.uuid5(_THREAD_NAMESPACE, thread_id).bytes


GRAPH_EVENTS = frozenset(range(EventType.GRAPH_CHECKPOINT_PUT, EventType.GRAPH_THREAD_PRUNED + 1))


class Blob(msgspec.Struct, array_like=True, frozen=True):
    """One channel value at one version: the serializer's ``(type, bytes)``."""

    channel: str
    version: Version
    type: str
    data: bytes


class Write(msgspec.Struct, array_like=True, frozen=True):
    """One pending write: its index (negative for LangGraph's special channels)."""

    idx: int
    channel: str
    type: str
    data: bytes


class CheckpointPut(msgspec.Struct, frozen=True, rename={
    "thread": "t", "checkpoint_id": "id", "parent": "p", "checkpoint": "ck",
    "metadata": "md", "versions": "cv", "blobs": "b", "run_id": "r",
    "delta_channels": "dc",
}):
    """``put``: a checkpoint without its channel values (``ck``: the serialized
    rest, channel versions apart), its metadata (serialized), its channel
    versions in clear (``cv``, so values are found without decoding ``ck``),
    the values of the channels in ``new_versions`` (``b``), the run id and the
    delta channels (the keys of ``counters_since_delta_snapshot``) in clear."""

    v: int
    thread: str
    ns: str
    checkpoint_id: str
    parent: str | None
    checkpoint: tuple[str, bytes]
    metadata: tuple[str, bytes]
    versions: dict[str, Version]
    blobs: list[Blob]
    run_id: str | None = None
    delta_channels: list[str] = []


class WritesPut(msgspec.Struct, frozen=True, rename={
    "thread": "t", "checkpoint_id": "id", "task_id": "task", "task_path": "path",
    "writes": "w",
}):
    """``put_writes``: one task's writes against one checkpoint."""

    v: int
    thread: str
    ns: str
    checkpoint_id: str
    task_id: str
    task_path: str
    writes: list[Write]


class ThreadTombstone(msgspec.Struct, frozen=True, rename={"thread": "t", "reason": "why"}):
    """``delete_thread`` (or ``prune(strategy="delete")``): the thread's tombstone."""

    v: int
    thread: str
    reason: str = "delete"


class RunsDeleted(msgspec.Struct, frozen=True, rename={"run_ids": "runs"}):
    """``delete_for_runs``: every checkpoint (and its writes) of these runs."""

    v: int
    run_ids: list[str]


class ThreadCopied(msgspec.Struct, frozen=True, rename={"thread": "t", "source": "src"}):
    """``copy_thread``: the target takes the source's checkpoints as they are
    now, by reference to the source's records (nothing is copied on disk)."""

    v: int
    thread: str
    source: str


class ThreadPruned(msgspec.Struct, frozen=True, rename={"thread": "t"}):
    """``prune(strategy="keep_latest")``: per namespace, the checkpoints kept
    (``keep``: listed) and the ancestors kept hidden only because a delta
    channel of a kept one is rebuilt from them (``hide``). Everything else
    of the thread is dropped."""

    v: int
    thread: str
    keep: dict[str, list[str]]
    hide: dict[str, list[str]] = {}


_TYPES: dict[int, type[Any]] = {
    EventType.GRAPH_CHECKPOINT_PUT: CheckpointPut,
    EventType.GRAPH_WRITES_PUT: WritesPut,
    EventType.GRAPH_THREAD_DELETED: ThreadTombstone,
    EventType.GRAPH_RUNS_DELETED: RunsDeleted,
    EventType.GRAPH_THREAD_COPIED: ThreadCopied,
    EventType.GRAPH_THREAD_PRUNED: ThreadPruned,
}


def to_payload(event: msgspec.Struct) -> dict[str, Any]:
    """The msgpack map an event is written as (short keys, bytes kept as bytes)."""
    payload: dict[str, Any] = msgspec.to_builtins(event, builtin_types=(bytes,))
    return payload


def decode_graph_event(event_type: int, payload: dict[str, Any]) -> Any:
    """The typed event of a decoded payload; a payload of the wrong shape is
    :class:`CorruptPayload` (unknown keys are ignored: later versions may add some)."""
    try:
        return msgspec.convert(payload, _TYPES[event_type])
    except (msgspec.ValidationError, KeyError) as exc:
        raise CorruptPayload(f"graph event type {event_type}: {exc}") from exc


def summarize_graph(event_type: int, payload: dict[str, Any]) -> str:
    """The audit line of a graph event (``agcx log``)."""
    ev = decode_graph_event(event_type, payload)
    if isinstance(ev, CheckpointPut):
        where = f"thread {ev.thread!r}" + (f" ns {ev.ns!r}" if ev.ns else "")
        return (
            f"checkpoint {ev.checkpoint_id} of {where}, {len(ev.blobs)} new values"
            + (f", parent {ev.parent}" if ev.parent else "")
        )
    if isinstance(ev, WritesPut):
        return (
            f"{len(ev.writes)} writes of task {ev.task_id} on checkpoint {ev.checkpoint_id} "
            f"of thread {ev.thread!r}"
        )
    if isinstance(ev, ThreadTombstone):
        return f"thread {ev.thread!r} deleted ({ev.reason})"
    if isinstance(ev, RunsDeleted):
        return f"checkpoints of {len(ev.run_ids)} runs deleted"
    if isinstance(ev, ThreadCopied):
        return f"thread {ev.thread!r} forked from {ev.source!r}"
    assert isinstance(ev, ThreadPruned)
    kept = sum(len(v) for v in ev.keep.values())
    hidden = sum(len(v) for v in ev.hide.values())
    return f"thread {ev.thread!r} pruned to {kept} checkpoints (+{hidden} kept for delta channels)"
