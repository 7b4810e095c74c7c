"""LangGraph checkpoints on the journal: :class:`JournalSaver`.

``pip install "agcx[langgraph]"``. Every ``put``, ``put_writes``, deletion,
copy and prune is one event (journal/_graph.py, docs/FORMAT.md); the
``graphs`` projection (projections/_graphs.py) says where each checkpoint,
write and channel value lives, so a read decodes only the records it needs.
The journal gives what LangGraph's SQLite savers lack: several processes may
share one directory (commits take the journal's lock for one commit only),
compaction keeps exactly what the live threads need, and ``agcx log``,
``stats``, ``verify``, ``compact`` and ``recover --at`` see graph threads
like sessions.

The logic is written once, synchronously; the async methods run it in a
worker thread (``anyio.to_thread``), so they work under asyncio and trio.
"""

from __future__ import annotations

import os
import random
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from functools import partial
from types import TracebackType
from typing import Any, TypeVar, cast
from uuid import UUID

import anyio.to_thread

try:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import (
        WRITES_IDX_MAP,
        BaseCheckpointSaver,
        ChannelVersions,
        Checkpoint,
        CheckpointMetadata,
        CheckpointTuple,
        DeltaChannelHistory,
        PendingWrite,
        get_checkpoint_id,
        get_checkpoint_metadata,
        writes_sort_key,
    )
    from langgraph.checkpoint.serde.base import SerializerProtocol
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError(
        'journal.integrations.langgraph needs LangGraph: pip install "agcx[langgraph]"'
    ) from exc

from journal._errors import InvalidArgument, RecordNotFound, ThreadDeleted
from journal._events import EventType, upcast
from journal._graph import (
    EMPTY,
    Blob,
    CheckpointPut,
    RunsDeleted,
    ThreadCopied,
    ThreadPruned,
    ThreadTombstone,
    Write,
    WritesPut,
    decode_graph_event,
    thread_key,
    to_payload,
)
from journal._log import Entry
from journal._store import SessionStore
from projections._graphs import HIDDEN, PARENT, SEQ, Namespace

__all__ = ["JournalSaver"]

_T = TypeVar("_T")
_STRIPES = 64
_CACHE = 512  # decoded records kept (a checkpoint's values are mostly in recent records)
_List = list  # ``list`` is a method of the saver: its annotations use this
_ATTEMPTS = 3  # reads that met a compaction between the index and the records


class JournalSaver(
    BaseCheckpointSaver[str], AbstractContextManager["JournalSaver"],
    AbstractAsyncContextManager["JournalSaver"],
):
    """A LangGraph checkpointer on the agcx journal at ``path``.

    ``path`` defaults to the store's (``~/.agcodex/history``); options of
    :meth:`journal.SessionStore.open` and :meth:`journal.Journal.open`
    (``durability``, ``segment_size``, ``readonly``, ...) pass through.
    Use it as a context manager (``with`` or ``async with``) or call
    :meth:`close`. Thread-safe; several processes may open one directory.

    A thread deleted with :meth:`delete_thread` (or ``prune(...,
    strategy="delete")``) stays deleted: a later ``put`` or ``put_writes``
    that continues one of its checkpoints (a run still going when it was
    deleted) raises :class:`journal.ThreadDeleted` and writes nothing. A
    ``put`` without a parent starts the thread afresh.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        serde: SerializerProtocol | None = None,
        **journal_options: Any,
    ) -> None:
        super().__init__(serde=serde)
        self._store = SessionStore.open(path, **journal_options)
        self._journal = self._store.journal
        self._runner = self._store._runner
        self._graphs = self._store._graphs
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- lifetime ----------------------------------------------------------------------------

    @property
    def store(self) -> SessionStore:
        """The store underneath (the journal's sessions, compaction, point in time)."""
        return self._store

    def close(self) -> None:
        """Persist the projections' state and release the journal."""
        self._store.close()

    def __enter__(self) -> JournalSaver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> JournalSaver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.close)

    # -- reading -----------------------------------------------------------------------------

    def _event(self, seq: int) -> Any:
        """The typed graph event at ``seq`` (recent ones cached: a seq's record
        never changes, compaction keeps it as it is or drops it)."""
        with self._cache_lock:
            ev = self._cache.get(seq)
            if ev is not None:
                self._cache.move_to_end(seq)
                return ev
        return self._events([seq])[seq]

    def _events(self, seqs: Sequence[int]) -> dict[int, Any]:
        """The typed events at ``seqs``: cached ones, the others read at once."""
        out: dict[int, Any] = {}
        with self._cache_lock:
            for seq in seqs:
                ev = self._cache.get(seq)
                if ev is not None:
                    out[seq] = ev
        missing = [s for s in seqs if s not in out]
        if missing:
            j = self._journal
            for rec in j.read_many(missing):
                out[rec.seq] = decode_graph_event(
                    rec.event_type, upcast(rec.event_type, j.decode(rec))
                )
            self._remember({s: out[s] for s in missing})
        return out

    def _remember(self, events: Mapping[int, Any]) -> None:
        with self._cache_lock:
            self._cache.update(events)
            while len(self._cache) > _CACHE:
                self._cache.popitem(last=False)

    def _retrying(self, fn: Callable[[], _T]) -> _T:
        # The index is read under the runner's lock, the records after it: a
        # compaction in between may have dropped what the index named. Read
        # again from the rebuilt index (the answer is the same).
        for attempt in range(_ATTEMPTS):
            try:
                return fn()
            except RecordNotFound:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _value(self, loc: _List[int] | None) -> tuple[bool, Any]:
        """(present, value) of the channel value stored at ``loc``."""
        if loc is None:
            return False, None
        blob: Blob = self._event(loc[0]).blobs[loc[1]]
        if blob.type == EMPTY:
            return False, None
        return True, self.serde.loads_typed((blob.type, blob.data))

    def _tuple(
        self, thread_id: str, ns: str, cid: str, ck: _List[Any], n: Namespace,
        metadata: CheckpointMetadata | None = None,
    ) -> CheckpointTuple:
        """Build one checkpoint tuple (reads records; ``n`` is read under the lock)."""
        ev: CheckpointPut = self._event(ck[SEQ])
        with self._runner.lock:
            blobs = n[2]
            locs = {ch: blobs.get(ch, {}).get(ver) for ch, ver in ev.versions.items()}
            writes = [
                (task, idx, w[0], w[1], w[2])
                for task, idxs in n[1].get(cid, {}).items()
                for idx, w in idxs.items()
            ]
        self._events([loc[0] for loc in locs.values() if loc] + [w[2] for w in writes])
        values: dict[str, Any] = {}
        for ch, loc in locs.items():
            present, value = self._value(loc)
            if present:
                values[ch] = value
        writes.sort(key=lambda w: writes_sort_key(w[4], w[0], w[1]))
        pending: _List[PendingWrite] = []
        for task, _, seq, i, _ in writes:
            w: Write = self._event(seq).writes[i]
            pending.append((task, w.channel, self.serde.loads_typed((w.type, w.data))))
        checkpoint = cast(
            Checkpoint,
            {
                **self.serde.loads_typed(ev.checkpoint),
                "channel_versions": dict(ev.versions),
                "channel_values": values,
            },
        )
        parent = ck[PARENT]
        return CheckpointTuple(
            config=_config(thread_id, ns, cid),
            checkpoint=checkpoint,
            metadata=metadata if metadata is not None else self.serde.loads_typed(ev.metadata),
            parent_config=_config(thread_id, ns, parent) if parent else None,
            pending_writes=pending,
        )

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``, else the
        newest of its thread and namespace), or None."""
        thread_id, ns, cid = _target(config)

        def attempt() -> CheckpointTuple | None:
            self._store._sync()
            with self._runner.lock:
                n = self._graphs.namespace(thread_id, ns)
                if n is None:
                    return None
                cks = n[0]
                found = cid
                if found is None:
                    found = max((c for c, ck in cks.items() if not ck[HIDDEN]), default=None)
                ck = cks.get(found) if found is not None else None
                if ck is None or ck[HIDDEN]:
                    return None
                ck = list(ck)
            assert found is not None
            return self._tuple(thread_id, ns, found, ck, n)

        return self._retrying(attempt)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace, if
        it names one; every thread when ``config`` is None), whose metadata
        has every ``filter`` key at that value, with an id lower than
        ``before``'s, at most ``limit``."""
        if limit is not None and limit <= 0:
            return
        conf = config["configurable"] if config else {}
        want_thread = str(conf["thread_id"]) if config and "thread_id" in conf else None
        want_ns = conf.get("checkpoint_ns") if config else None
        want_id = conf.get("checkpoint_id") if config else None
        before_id = get_checkpoint_id(before) if before else None
        self._store._sync()
        found: _List[tuple[str, str, str, _List[Any], Namespace]] = []
        with self._runner.lock:
            if want_thread is not None:
                th = self._graphs.thread(want_thread)
                threads = [th] if th is not None else []
            else:
                threads = list(self._graphs.iter_threads())
            for thread_id, spaces in threads:
                for ns, n in spaces.items():
                    if want_ns is not None and ns != want_ns:
                        continue
                    for cid in sorted(n[0], reverse=True):
                        ck = n[0][cid]
                        if ck[HIDDEN] or (want_id and cid != want_id):
                            continue
                        if before_id and cid >= before_id:
                            continue
                        found.append((thread_id, ns, cid, list(ck), n))
        left = limit
        for thread_id, ns, cid, ck, n in found:
            try:
                metadata = self.serde.loads_typed(self._event(ck[SEQ]).metadata)
            except RecordNotFound:
                continue  # dropped by a prune or compaction since the index was read
            if filter and not all(metadata.get(k) == v for k, v in filter.items()):
                continue
            try:
                tup = self._tuple(thread_id, ns, cid, ck, n, metadata)
            except RecordNotFound:
                continue
            yield tup
            if left is not None:
                left -= 1
                if left <= 0:
                    return

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """For each channel, the writes on the path to ``config``'s checkpoint
        since the nearest ancestor holding its value (the ``seed``).

        Walks the parent chain through the index, ancestors that ``prune``
        kept hidden for this purpose included (LangGraph's default walks
        ``get_tuple``, which never returns those).
        """
        if not channels:
            return {}
        thread_id, ns, cid = _target(config)

        def attempt() -> dict[str, DeltaChannelHistory]:
            self._store._sync()
            chain: _List[tuple[str, _List[Any]]] = []
            with self._runner.lock:
                n = self._graphs.namespace(thread_id, ns)
                cks: dict[str, _List[Any]] = n[0] if n is not None else {}
                target = cid or max((c for c, ck in cks.items() if not ck[HIDDEN]), default="")
                current = cks[target][PARENT] if target in cks else None
                seen: set[str] = set()
                while current is not None and current in cks and current not in seen:
                    seen.add(current)  # a re-put may make the chain a loop
                    chain.append((current, list(cks[current])))
                    current = cks[current][PARENT]
            collected: dict[str, _List[PendingWrite]] = {c: [] for c in channels}
            seeds: dict[str, Any] = {}
            remaining = set(channels)
            for ancestor, ck in chain:
                if not remaining or n is None:
                    break
                versions = self._event(ck[SEQ]).versions
                with self._runner.lock:
                    locs = {ch: n[2].get(ch, {}).get(versions.get(ch)) for ch in remaining}
                    writes = [
                        (task, idx, w)
                        for task, idxs in n[1].get(ancestor, {}).items()
                        for idx, w in idxs.items()
                    ]
                here: dict[str, Any] = {}
                for ch, loc in locs.items():
                    present, value = self._value(loc)
                    if present:
                        here[ch] = value
                writes.sort(key=lambda x: writes_sort_key(x[2][2], x[0], x[1]), reverse=True)
                for task, _, w in writes:
                    stored: Write = self._event(w[0]).writes[w[1]]
                    if stored.channel in remaining:
                        value = self.serde.loads_typed((stored.type, stored.data))
                        collected[stored.channel].append((task, stored.channel, value))
                for ch, value in here.items():
                    seeds[ch] = value
                    remaining.discard(ch)
            result: dict[str, DeltaChannelHistory] = {}
            for ch in channels:
                entry: DeltaChannelHistory = {"writes": list(reversed(collected[ch]))}
                if ch in seeds:
                    entry["seed"] = seeds[ch]
                result[ch] = entry
            return result

        return self._retrying(attempt)

    # -- writing -----------------------------------------------------------------------------

    def _lock_for(self, thread_id: str) -> threading.Lock:
        # A put, write, delete, copy or prune of one thread never shares a group
        # commit with another of the same thread: each one's prepare check sees
        # the log, not the batches written with it.
        return self._locks[hash(thread_id) % _STRIPES]

    def _append(
        self, thread_ids: Sequence[str], entries: _List[Entry],
        prepare: Callable[[], Sequence[Entry] | None] | None = None,
    ) -> None:
        stripes = sorted({hash(t) % _STRIPES for t in thread_ids})
        for i in stripes:
            self._locks[i].acquire()
        try:
            self._store._append(entries, prepare)
        finally:
            for i in reversed(stripes):
                self._locks[i].release()

    def _late_check(
        self, check: Callable[[], int | None], thread_id: str, what: str
    ) -> Callable[[], None]:
        """The ``prepare`` of a put or write: under the commit lock, caught up
        with every process (a no-op when nothing came in), raise if the thread
        was deleted under what this write continues."""

        def prepare() -> None:
            self._store._sync()
            with self._runner.lock:
                late = check()
            if late is not None:
                raise self._deleted(thread_id, late, what)

        return prepare

    def _write_checked(
        self, thread_id: str, event_type: int, event: Any, late: Callable[[], int | None],
        what: str,
    ) -> None:
        """Append a put or a write of ``thread_id`` unless it is late (see
        :meth:`_late_check`); keep the event for the reads that follow."""
        entry = _entry(event_type, event, thread_id)
        with self._lock_for(thread_id):
            # The check raises or appends the entry as it is: the fold may
            # take its payload from memory instead of decoding the record.
            seq = self._store._append(
                [entry], self._late_check(late, thread_id, what), fold_payloads=True
            )[0]
        self._remember({seq: event})  # read back soon: the next put's values, get_tuple

    @staticmethod
    def _deleted(thread_id: str, tomb: int, what: str) -> ThreadDeleted:
        return ThreadDeleted(
            f"thread {thread_id!r} was deleted (seq {tomb}) after the checkpoint this "
            f"{what} continues; nothing was written and the thread stays deleted",
            thread_id,
            tomb,
        )

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (the values of the channels in ``new_versions``
        with it); return the config that names it."""
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        parent = conf.get("checkpoint_id")
        c: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = c.pop("channel_values")
        versions: dict[str, Any] = c.pop("channel_versions")
        md = get_checkpoint_metadata(config, metadata)
        blobs = [
            Blob(k, v, *self.serde.dumps_typed(values[k]))
            if k in values
            else Blob(k, v, EMPTY, b"")
            for k, v in new_versions.items()
        ]
        run_id = md.get("run_id")
        counters = md.get("counters_since_delta_snapshot")
        event = CheckpointPut(
            v=1,
            thread=thread_id,
            ns=ns,
            checkpoint_id=checkpoint["id"],
            parent=parent,
            checkpoint=self.serde.dumps_typed(c),
            metadata=self.serde.dumps_typed(md),
            versions=dict(versions),
            blobs=blobs,
            run_id=str(run_id) if run_id is not None else None,
            delta_channels=sorted(counters) if isinstance(counters, dict) else [],
        )
        self._write_checked(
            thread_id, EventType.GRAPH_CHECKPOINT_PUT, event,
            lambda: self._graphs.late_put(thread_id, ns, parent), "put",
        )
        return _config(thread_id, ns, checkpoint["id"])

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes against a checkpoint. Idempotent: an ordinary
        write already stored for ``(task_id, index)`` is kept; a write to a
        special channel (errors, interrupts, ...) replaces the stored one."""
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        cid = conf["checkpoint_id"]
        indexed = [(WRITES_IDX_MAP.get(ch, i), ch, v) for i, (ch, v) in enumerate(writes)]
        with self._runner.lock:
            n = self._graphs.namespace(thread_id, ns)
            stored = set(n[1].get(cid, {}).get(task_id, {})) if n is not None else set()
        # Already stored (as far as this process knows): skipped here to save
        # the bytes; the fold skips any that another process stored meanwhile.
        todo = [w for w in indexed if w[0] < 0 or w[0] not in stored]
        if not todo:
            return
        event = WritesPut(
            v=1,
            thread=thread_id,
            ns=ns,
            checkpoint_id=cid,
            task_id=task_id,
            task_path=task_path,
            writes=[Write(idx, ch, *self.serde.dumps_typed(v)) for idx, ch, v in todo],
        )
        self._write_checked(
            thread_id, EventType.GRAPH_WRITES_PUT, event,
            lambda: self._graphs.late_writes(thread_id, ns, cid), "write",
        )

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread; it stays deleted (a tombstone)."""
        tid = str(thread_id)
        self._append([tid], [_tombstone(tid, "delete")])

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete every checkpoint (and its writes) whose metadata names one of these runs."""
        runs = [str(r) for r in run_ids]
        if not runs:
            return
        event = RunsDeleted(v=1, run_ids=runs)
        self._store._append([_entry(EventType.GRAPH_RUNS_DELETED, event, None)])

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Fork: the target gets every checkpoint and write the source has now.

        One small event whatever the source's size: the target refers to the
        source's records (nothing is copied), and compaction keeps those
        records while either thread needs them.
        """
        src, dst = str(source_thread_id), str(target_thread_id)
        event = ThreadCopied(v=1, thread=dst, source=src)
        self._append([src, dst], [_entry(EventType.GRAPH_THREAD_COPIED, event, dst)])

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: ``"keep_latest"`` keeps the newest checkpoint of each
        namespace, ``"delete"`` deletes the threads (as :meth:`delete_thread`).

        Delta channels stay whole: the ancestors a kept checkpoint's delta
        channels are rebuilt from (back to the nearest one holding each
        channel's value) are kept too, hidden: never listed or returned,
        walked by :meth:`get_delta_channel_history`. Compaction then drops
        everything else of the thread.
        """
        if strategy not in ("keep_latest", "delete"):
            raise InvalidArgument(
                f"prune strategy must be 'keep_latest' or 'delete', got {strategy!r}"
            )
        tids = [str(t) for t in thread_ids]
        if not tids:
            return
        if strategy == "delete":
            self._append(tids, [_tombstone(t, "prune") for t in tids])
            return

        def prepare() -> _List[Entry]:
            self._store._sync()
            return [e for t in tids if (e := self._prune_entry(t)) is not None]

        # Decided under the commit lock from what the log holds then; a
        # prepare that returns no entries writes nothing.
        self._append(tids, [], prepare)

    def _prune_entry(self, thread_id: str) -> Entry | None:
        with self._runner.lock:
            th = self._graphs.thread(thread_id)
            if th is None:
                return None
            spaces = {ns: n for ns, n in th[1].items()}
        keep: dict[str, _List[str]] = {}
        hide: dict[str, _List[str]] = {}
        for ns, n in spaces.items():
            with self._runner.lock:
                cks = {c: list(ck) for c, ck in n[0].items()}
            latest = max((c for c, ck in cks.items() if not ck[HIDDEN]), default=None)
            if latest is None:
                continue
            keep[ns] = [latest]
            hidden = self._delta_ancestors(n, cks, latest)
            if hidden:
                hide[ns] = hidden
        event = ThreadPruned(v=1, thread=thread_id, keep=keep, hide=hide)
        return _entry(EventType.GRAPH_THREAD_PRUNED, event, thread_id)

    def _delta_ancestors(self, n: Namespace, cks: dict[str, _List[Any]], cid: str) -> _List[str]:
        """The ancestors of ``cid`` its delta channels are rebuilt from: back
        to the nearest one that holds each such channel's value."""
        ev: CheckpointPut = self._event(cks[cid][SEQ])

        def holds(versions: dict[str, Any], ch: str) -> bool:
            with self._runner.lock:
                loc = n[2].get(ch, {}).get(versions.get(ch))
            return self._value_present(loc)

        pending = {ch for ch in ev.delta_channels if not holds(ev.versions, ch)}
        out: _List[str] = []
        current = cks[cid][PARENT]
        while pending and current is not None and current in cks and current not in out:
            out.append(current)
            versions = self._event(cks[current][SEQ]).versions
            pending = {ch for ch in pending if not holds(versions, ch)}
            current = cks[current][PARENT]
        return out

    def _value_present(self, loc: _List[int] | None) -> bool:
        return loc is not None and self._event(loc[0]).blobs[loc[1]].type != EMPTY

    def get_next_version(self, current: str | int | None, channel: None) -> str:
        """Versions as LangGraph's own savers write them: a zero-padded counter
        and a random fraction, so that a fork's new versions never equal the
        abandoned branch's (values are stored once per version)."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # -- the async face ------------------------------------------------------------------------

    async def _run(self, fn: Callable[[], _T]) -> _T:
        return await anyio.to_thread.run_sync(fn)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """As :meth:`get_tuple`, run in a worker thread."""
        return await self._run(partial(self.get_tuple, config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """As :meth:`list`, run in a worker thread."""
        it = self.list(config, filter=filter, before=before, limit=limit)
        done = object()
        while True:
            item = await self._run(partial(next, it, done))
            if item is done:
                return
            assert isinstance(item, CheckpointTuple)
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """As :meth:`put`, run in a worker thread."""
        return await self._run(partial(self.put, config, checkpoint, metadata, new_versions))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """As :meth:`put_writes`, run in a worker thread."""
        await self._run(partial(self.put_writes, config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        """As :meth:`delete_thread`, run in a worker thread."""
        await self._run(partial(self.delete_thread, thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """As :meth:`delete_for_runs`, run in a worker thread."""
        await self._run(partial(self.delete_for_runs, run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """As :meth:`copy_thread`, run in a worker thread."""
        await self._run(partial(self.copy_thread, source_thread_id, target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """As :meth:`prune`, run in a worker thread."""
        await self._run(partial(self.prune, thread_ids, strategy=strategy))

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """As :meth:`get_delta_channel_history`, run in a worker thread."""
        return await self._run(
            partial(self.get_delta_channel_history, config=config, channels=channels)
        )


def _target(config: RunnableConfig) -> tuple[str, str, str | None]:
    conf = config["configurable"]
    return str(conf["thread_id"]), conf.get("checkpoint_ns", ""), get_checkpoint_id(config)


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _tombstone(thread_id: str, reason: str) -> Entry:
    event = ThreadTombstone(v=1, thread=thread_id, reason=reason)
    return _entry(EventType.GRAPH_THREAD_DELETED, event, thread_id)


def _entry(event_type: int, event: Any, thread_id: str | None) -> Entry:
    """The journal entry of a graph event: in its thread's session, when it has one."""
    session = UUID(bytes=thread_key(thread_id)) if thread_id is not None else None
    return Entry(event_type, to_payload(event), session)
