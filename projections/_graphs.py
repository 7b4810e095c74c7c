"""Graph checkpoints: where each LangGraph thread's checkpoints, writes and
channel values live in the log (events of journal/_graph.py).

Per thread (keyed by :func:`journal._graph.thread_key`), per namespace:

* ``cks``: checkpoint id -> ``[seq, parent id, run id, hidden, size]``: the
  record of its ``GraphCheckpointPut``. ``hidden`` marks an ancestor that
  ``prune`` kept only because a delta channel of a kept checkpoint is
  rebuilt from it: never listed or returned, only walked;
* ``writes``: checkpoint id -> task id -> write index -> ``[seq, i, task
  path, size]``: the ``i``-th write of the ``GraphWritesPut`` at ``seq``;
* ``blobs``: channel -> version -> ``[seq, i]``: the ``i``-th value of the
  ``GraphCheckpointPut`` at ``seq`` (the last one stored for that version).

``tombs`` maps a deleted thread's key to the seq of its last
``GraphThreadDeleted``, or of the ``SessionPurged`` that purged it (its
payload names the thread under ``graph``; the thread's own records are
gone). The rule a late write meets (:meth:`late_put`, :meth:`late_writes`)
is the fold's own: a put or write that continues a checkpoint the thread no
longer has, on a thread that was ever deleted, is not indexed, and the
saver refuses it under the commit lock before it is written, by asking the
same question.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack

from journal._events import EventType
from journal._graph import (
    CheckpointPut,
    RunsDeleted,
    ThreadCopied,
    ThreadPruned,
    ThreadTombstone,
    WritesPut,
    decode_graph_event,
    thread_key,
)
from journal._segment import Record
from projections._base import pack_entries, settled, unpack_entries

__all__ = ["GraphCheckpoints", "Namespace", "Thread"]

_PUT = int(EventType.GRAPH_CHECKPOINT_PUT)
_WRITES = int(EventType.GRAPH_WRITES_PUT)
_DELETED = int(EventType.GRAPH_THREAD_DELETED)
_RUNS = int(EventType.GRAPH_RUNS_DELETED)
_COPIED = int(EventType.GRAPH_THREAD_COPIED)
_PRUNED = int(EventType.GRAPH_THREAD_PRUNED)
_PURGED = int(EventType.SESSION_PURGED)
_FIRST, _LAST = _PUT, _PRUNED

# Positions in a checkpoint entry.
SEQ, PARENT, RUN, HIDDEN, SIZE = range(5)

# A namespace: [cks, writes, blobs]; a thread: [thread id, {ns: namespace}].
Namespace = list[Any]
Thread = list[Any]


def _new_namespace() -> Namespace:
    return [{}, {}, {}]


class GraphCheckpoints:
    """Every graph thread's checkpoints, writes and values, by where they are stored."""

    name = "graphs"
    version = 2  # 2: a purged thread is dropped (snaps of 1 may still hold one)

    def __init__(self) -> None:
        self._threads: dict[bytes, Thread] = {}
        self._packed: bytes | None = None  # the snap's threads, not unpacked yet
        self.tombs: dict[bytes, int] = {}

    @property
    def threads(self) -> dict[bytes, Thread]:
        """Threads by key (unpacked from the snap on first use)."""
        t = self._threads
        if self._packed is not None:
            t = self._threads = unpack_entries(self._packed, _unpack_thread, _SOURCE)
            self._packed = None
        elif type(t) is not dict:
            t = self._threads = settled(t)
        return t

    # -- queries (the caller holds the runner's lock) ----------------------------------------

    def namespace(self, thread_id: str, ns: str) -> Namespace | None:
        th = self.threads.get(thread_key(thread_id))
        if th is None or th[0] != thread_id:
            return None
        n: Namespace | None = th[1].get(ns)
        return n

    def thread(self, thread_id: str) -> Thread | None:
        th = self.threads.get(thread_key(thread_id))
        return th if th is not None and th[0] == thread_id else None

    def live(self, thread_id: str, ns: str, checkpoint_id: str) -> bool:
        n = self.namespace(thread_id, ns)
        if n is None:
            return False
        ck = n[0].get(checkpoint_id)
        return ck is not None and not ck[HIDDEN]

    def late_put(self, thread_id: str, ns: str, parent: str | None) -> int | None:
        """The seq of the tombstone that refuses a put continuing ``parent``, else None."""
        tomb = self.tombs.get(thread_key(thread_id))
        if tomb is None or parent is None or self.live(thread_id, ns, parent):
            return None
        return tomb

    def late_writes(self, thread_id: str, ns: str, checkpoint_id: str) -> int | None:
        """The seq of the tombstone that refuses writes against ``checkpoint_id``, else None."""
        tomb = self.tombs.get(thread_key(thread_id))
        if tomb is None or self.live(thread_id, ns, checkpoint_id):
            return None
        return tomb

    def iter_threads(self) -> Iterator[Thread]:
        yield from self.threads.values()

    def live_bytes(self) -> int:
        """Bytes of the records the threads' checkpoints and writes are in."""
        seen: dict[int, int] = {}
        for _, spaces in self.threads.values():
            for cks, writes, _ in spaces.values():
                for ck in cks.values():
                    seen[ck[SEQ]] = ck[SIZE]
                for tasks in writes.values():
                    for idxs in tasks.values():
                        for w in idxs.values():
                            seen[w[0]] = w[3]
        return sum(seen.values())

    def checkpoint_count(self) -> int:
        return sum(
            sum(1 for ck in n[0].values() if not ck[HIDDEN])
            for _, spaces in self.threads.values()
            for n in spaces.values()
        )

    # -- the fold ----------------------------------------------------------------------------

    def apply(self, rec: Record, event: dict[str, Any]) -> None:
        t = rec.event_type
        if not _FIRST <= t <= _LAST:
            if t == _PURGED and type(event.get("graph")) is str:
                threads = self._threads if self._packed is None else self.threads
                self._gone(threads, rec.session, rec.seq)
            return
        ev = decode_graph_event(t, event)
        threads = self._threads if self._packed is None else self.threads
        if t == _PUT:
            self._put(threads, rec, ev)
        elif t == _WRITES:
            self._writes(threads, rec, ev)
        elif t == _DELETED:
            self._delete(threads, rec, ev)
        elif t == _RUNS:
            self._delete_runs(threads, ev)
        elif t == _COPIED:
            self._copy(threads, ev)
        else:
            self._prune(threads, ev)

    def _space(self, threads: dict[bytes, Thread], thread_id: str, ns: str) -> Namespace:
        key = thread_key(thread_id)
        th = threads.get(key)
        if th is None or th[0] != thread_id:
            th = threads[key] = [thread_id, {}]
        spaces: dict[str, Namespace] = th[1]
        n = spaces.get(ns)
        if n is None:
            n = spaces[ns] = _new_namespace()
        return n

    def _put(self, threads: dict[bytes, Thread], rec: Record, ev: CheckpointPut) -> None:
        if self.late_put(ev.thread, ev.ns, ev.parent) is not None:
            return  # a late put: the saver refuses these; the fold ignores any that exist
        cks, _, blobs = self._space(threads, ev.thread, ev.ns)
        cks[ev.checkpoint_id] = [rec.seq, ev.parent, ev.run_id, False, rec.size]
        for i, b in enumerate(ev.blobs):
            blobs.setdefault(b.channel, {})[b.version] = [rec.seq, i]

    def _writes(self, threads: dict[bytes, Thread], rec: Record, ev: WritesPut) -> None:
        if self.late_writes(ev.thread, ev.ns, ev.checkpoint_id) is not None:
            return
        writes = self._space(threads, ev.thread, ev.ns)[1]
        idxs = writes.setdefault(ev.checkpoint_id, {}).setdefault(ev.task_id, {})
        for i, w in enumerate(ev.writes):
            # An ordinary write already stored for (task, idx) is kept (put_writes
            # is idempotent); a special channel's (negative idx) is replaced.
            if w.idx >= 0 and w.idx in idxs:
                continue
            idxs[w.idx] = [rec.seq, i, ev.task_path, rec.size]

    def _delete(self, threads: dict[bytes, Thread], rec: Record, ev: ThreadTombstone) -> None:
        key = thread_key(ev.thread)
        th = threads.get(key)
        if th is not None and th[0] == ev.thread:
            del threads[key]
        self.tombs[key] = rec.seq

    def _gone(self, threads: dict[bytes, Thread], key: bytes, seq: int) -> None:
        """A purged thread: dropped, and its late writes refused like a deleted one's."""
        threads.pop(key, None)
        self.tombs[key] = seq

    def _delete_runs(self, threads: dict[bytes, Thread], ev: RunsDeleted) -> None:
        runs = set(ev.run_ids)
        if not runs:
            return
        for th in threads.values():
            for cks, writes, _ in th[1].values():
                for cid in [c for c, ck in cks.items() if ck[RUN] in runs]:
                    del cks[cid]
                    writes.pop(cid, None)

    def _copy(self, threads: dict[bytes, Thread], ev: ThreadCopied) -> None:
        src = threads.get(thread_key(ev.source))
        if src is None or src[0] != ev.source or ev.source == ev.thread:
            return
        for ns, (cks, writes, blobs) in src[1].items():
            tcks, twrites, tblobs = self._space(threads, ev.thread, ns)
            for cid, ck in cks.items():
                tcks[cid] = list(ck)
            for cid, tasks in writes.items():
                dst = twrites.setdefault(cid, {})
                for task, idxs in tasks.items():
                    dst.setdefault(task, {}).update({i: list(w) for i, w in idxs.items()})
            for channel, versions in blobs.items():
                tblobs.setdefault(channel, {}).update(versions)

    def _prune(self, threads: dict[bytes, Thread], ev: ThreadPruned) -> None:
        key = thread_key(ev.thread)
        th = threads.get(key)
        if th is None or th[0] != ev.thread:
            return
        spaces: dict[str, Namespace] = th[1]
        for ns in list(spaces):
            cks, writes, _ = spaces[ns]
            keep = set(ev.keep.get(ns, ()))
            hide = set(ev.hide.get(ns, ()))
            for cid in list(cks):
                if cid in keep:
                    continue
                if cid in hide:
                    cks[cid][HIDDEN] = True
                else:
                    del cks[cid]
            for cid in [c for c in writes if c not in cks]:
                del writes[cid]
            if not cks and not writes:
                del spaces[ns]
        if not spaces:
            del threads[key]

    # -- state -------------------------------------------------------------------------------

    def to_state(self) -> Any:
        packed = self._packed if self._packed is not None else pack_entries(self._threads, _pack)
        return {"t": packed, "d": self.tombs}

    def load_state(self, state: Any) -> None:
        packed, tombs = state["t"], state["d"]
        if type(packed) is not bytes or type(tombs) is not dict:
            raise TypeError("malformed graphs state")
        self._threads = {}
        self._packed = packed
        self.tombs = {bytes(k): int(v) for k, v in tombs.items()}

    def plain_state(self) -> Any:
        return {"t": dict(self.threads.items()), "d": self.tombs}


_SOURCE = "projections/graphs.snap"


def _pack(thread: Thread) -> bytes:
    packed: bytes = msgpack.packb(thread, use_bin_type=True)
    return packed


def _unpack_thread(key: bytes, packed: bytes) -> Thread:
    th = msgpack.unpackb(packed, strict_map_key=False)
    if type(th) is not list or len(th) != 2 or type(th[0]) is not str or type(th[1]) is not dict:
        raise TypeError("a thread entry is not [thread id, namespaces]")
    return th
