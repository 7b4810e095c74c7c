"""Session contents: which records rebuild each session's current state.

Memory holds record locations (seqs) and sizes, never conversation contents:
loading a session reads its last full save and the deltas after it.
"""

from __future__ import annotations

from typing import Any

import msgpack

from journal._events import EventType, stored_raw_size
from journal._segment import Record
from projections._base import pack_entries, settled, unpack_entries

__all__ = ["Chain", "SessionContents"]

# Plain ints: comparing with an IntEnum member looks it up on its class each
# time (0.1-0.3 us a test, for every event and projection).
_SESSION_SAVED = int(EventType.SESSION_SAVED)
_CHECKPOINT_CREATED = int(EventType.CHECKPOINT_CREATED)
_CHECKPOINT_DELETED = int(EventType.CHECKPOINT_DELETED)
_SESSION_FORKED = int(EventType.SESSION_FORKED)
_SESSION_TRUNCATED = int(EventType.SESSION_TRUNCATED)
_GONE = frozenset({int(EventType.SESSION_DELETED), int(EventType.SESSION_PURGED)})


class Chain:
    """The records of one live session's current content, and its checkpoints.

    ``seqs`` is the last full save followed by the delta saves after it;
    ``stored``/``raw`` are their bytes on disk and uncompressed. ``checkpoints``
    maps a checkpoint id to ``[seq, stored bytes, raw bytes, metadata wire]``.

    A ``SessionTruncated`` record in ``seqs`` cuts the messages read before it
    to its ``n``. A fork's chain is its source's chain as the log held it at
    the ``SessionForked`` record, followed by that record (which cuts to the
    fork point), then the fork's own deltas: ``shares`` lists the sessions
    whose records it reads (purge gives the fork its own full save first),
    ``shared`` their bytes (counted once, with their source, in
    :meth:`SessionContents.live_bytes`), and ``origin`` is
    ``[source id, message count, seq]`` of the fork, kept across later saves.
    """

    __slots__ = (
        "born",
        "changes",
        "checkpoints",
        "delta_bytes",
        "full_bytes",
        "messages",
        "origin",
        "raw",
        "seqs",
        "shared",
        "shares",
        "stored",
    )

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.messages = 0
        self.full_bytes = 0
        self.delta_bytes = 0
        self.stored = 0
        self.raw = 0
        self.checkpoints: dict[bytes, list[Any]] = {}
        self.changes = 0  # bumped on every change, so callers can cache derived views
        self.born = 0  # seq of the save that began this life of the session
        self.shares: list[bytes] = []
        self.shared = 0
        self.origin: list[Any] | None = None

    @property
    def head(self) -> int:
        """Seq of the session's last save."""
        return self.seqs[-1] if self.seqs else 0

    def to_state(self) -> list[Any]:
        return [
            self.seqs,
            self.messages,
            self.full_bytes,
            self.delta_bytes,
            self.stored,
            self.raw,
            self.checkpoints,
            self.born,
            self.shares,
            self.shared,
            self.origin,
        ]

    @classmethod
    def from_state(cls, s: list[Any]) -> Chain:
        # No __init__, no copies: msgpack already gave fresh lists, bytes keys
        # and lists of checkpoint fields.
        if type(s) is not list or len(s) != 11:
            raise TypeError("malformed chain state")
        c = cls.__new__(cls)
        (
            c.seqs, c.messages, c.full_bytes, c.delta_bytes, c.stored, c.raw, c.checkpoints,
            c.born, c.shares, c.shared, c.origin,
        ) = s
        c.changes = 0
        if (
            type(c.seqs) is not list
            or not c.seqs
            or type(c.checkpoints) is not dict
            or type(c.shares) is not list
        ):
            raise TypeError("malformed chain state")
        return c


class SessionContents:
    """Live sessions' chains keyed by 16-byte session id.

    Restored from a snap, ``chains`` stays one packed blob until first used,
    then becomes a :class:`~projections._base.PackedEntries` whose chains are
    decoded when first read.
    """

    name = "contents"
    # 2: each session's chain packed on its own (decoded on first use);
    # 3: forks and truncations (shares, shared, origin)
    version = 3

    def __init__(self) -> None:
        self._chains: dict[bytes, Chain] = {}
        self._packed: bytes | None = None  # the snap's chains, not unpacked yet

    @property
    def chains(self) -> dict[bytes, Chain]:
        """Live sessions' chains by id (unpacked from the snap on first use)."""
        c = self._chains
        if self._packed is None and type(c) is dict:
            return c  # the common case, first: no call
        if self._packed is not None:
            c = self._chains = unpack_entries(self._packed, _unpack_chain, _SOURCE)
            self._packed = None
        else:
            c = self._chains = settled(c)
        return c

    @chains.setter
    def chains(self, value: dict[bytes, Chain]) -> None:
        self._chains = value
        self._packed = None

    def apply(self, rec: Record, event: dict[str, Any]) -> None:
        t = rec.event_type
        sid = rec.session
        chains = self._chains if self._packed is None else self.chains
        if t == _SESSION_SAVED:
            chain = chains.get(sid)
            if chain is None:
                chain = chains[sid] = Chain()
                chain.born = rec.seq
            size, raw = rec.size, stored_raw_size(rec, event)
            base = event.get("base", 0)
            if base == 0 or not chain.seqs or base != chain.messages:
                # A full save (a delta on another base cannot happen: the store
                # checks the base under the commit lock; if one ever did, the
                # record's own message count still tells the truth).
                chain.seqs = [rec.seq]
                chain.full_bytes, chain.delta_bytes = size, 0
                chain.stored, chain.raw = size, raw
                if chain.shares:
                    chain.shares, chain.shared = [], 0
                fork = event.get("fk")
                if fork is not None:  # a fork's own full save (compaction, purge)
                    chain.origin = list(fork)
            else:
                chain.seqs.append(rec.seq)
                chain.delta_bytes += size
                chain.stored += size
                chain.raw += raw
            chain.messages = event["n"]
            chain.changes += 1
        elif t in _GONE:
            dict.pop(chains, sid, None)  # gone: not decoded first if still packed
        elif t == _SESSION_FORKED:
            chains[sid] = _forked(chains.get(bytes(event["src"])), rec, event)
        elif t == _SESSION_TRUNCATED:
            chain = chains.get(sid)
            if chain is not None:
                size = rec.size
                chain.seqs.append(rec.seq)
                chain.messages = min(chain.messages, event["n"])
                chain.delta_bytes += size
                chain.stored += size
                chain.raw += size
                chain.changes += 1
        elif t == _CHECKPOINT_CREATED:
            chain = chains.get(sid)
            if chain is not None:
                meta = event["meta"]
                raw = stored_raw_size(rec, event)
                chain.checkpoints[bytes(meta["id"])] = [rec.seq, rec.size, raw, meta]
                chain.changes += 1
        elif t == _CHECKPOINT_DELETED:
            chain = chains.get(sid)
            if chain is not None:
                chain.checkpoints.pop(bytes(event["id"]), None)
                chain.changes += 1

    def live_bytes(self) -> int:
        """Bytes of the records that current state needs (the rest is reclaimable);
        a fork's shared records count with their source."""
        return sum(
            c.stored - c.shared + sum(k[1] for k in c.checkpoints.values())
            for c in self.chains.values()
        )

    def to_state(self) -> Any:
        # Never unpacked since the restore: written back as it was read.
        packed = self._packed if self._packed is not None else pack_entries(self._chains, _pack)
        return {"c": packed}

    def load_state(self, state: Any) -> None:
        packed = state["c"]
        if type(packed) is not bytes:
            raise TypeError("malformed contents state")
        self._chains = {}
        self._packed = packed

    def plain_state(self) -> Any:
        return {k: c.to_state() for k, c in self.chains.items()}


def _forked(source: Chain | None, rec: Record, event: dict[str, Any]) -> Chain:
    """The chain of a session forked from ``source`` (``None``: the source's
    records are gone, as in a view before a purge of the source)."""
    chain = Chain()
    chain.born = rec.seq
    src = bytes(event["src"])
    chain.origin = [src, event["n"], rec.seq]
    size = rec.size
    if source is None:
        chain.seqs = [rec.seq]
        chain.full_bytes = chain.stored = chain.raw = size
        return chain
    chain.seqs = [*source.seqs, rec.seq]
    chain.messages = min(source.messages, event["n"])
    chain.full_bytes = source.full_bytes
    chain.delta_bytes = source.delta_bytes + size
    chain.stored = source.stored + size
    chain.raw = source.raw + size
    chain.shared = source.stored
    chain.shares = [*source.shares, src] if src not in source.shares else list(source.shares)
    return chain


_SOURCE = "projections/contents.snap"


def _pack(chain: Chain) -> bytes:
    packed: bytes = msgpack.packb(chain.to_state(), use_bin_type=True)
    return packed


def _unpack_chain(sid: bytes, packed: bytes) -> Chain:
    # msgpack bounds every length by the input's (the snap's checksum passed).
    return Chain.from_state(msgpack.unpackb(packed, strict_map_key=False))
