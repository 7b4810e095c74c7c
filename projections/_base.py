"""What every projection is: a pure fold over records in seq order."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, ItemsView, Iterator, ValuesView
from typing import Any, Protocol, TypeVar

import msgpack

from journal._codec import Codec, unpack_bounded
from journal._errors import CorruptJournal, CorruptPayload
from journal._segment import Record

__all__ = [
    "PackedEntries",
    "Projection",
    "gc_paused",
    "pack_entries",
    "settled",
    "unpack_all",
    "unpack_entries",
]

_V = TypeVar("_V")
_ABSENT: Any = object()


class Projection(Protocol):
    """A fold of events into a view, with a state that can be saved and restored.

    ``apply`` is called once per record, in seq order, with the record (clear
    header, sizes) and its decoded, upcast payload. It must not do I/O: the
    same fold serves the live store, point-in-time views and rebuilds.
    """

    name: str
    version: int  # bump when the shape of ``to_state`` changes: old snaps are rebuilt

    def apply(self, rec: Record, event: dict[str, Any]) -> None: ...

    def to_state(self) -> Any: ...

    def load_state(self, state: Any) -> None: ...

    def plain_state(self) -> Any:
        """The state as plain values (nothing packed), for comparing two projections."""
        ...


class PackedEntries(dict[bytes, _V]):
    """Per-session entries restored from a snap, each kept packed until it is read.

    A snap stores every session's entry as its own msgpack bytes, so opening
    a store builds one small ``bytes`` object per session instead of its
    containers: open stays cheap however many sessions there are. Reading an
    entry (``[]``, ``get``, ``pop``, ``setdefault``, ``values``, ``items``,
    ``==``) decodes it once and keeps the decoded value in its place. Keys,
    membership and length never decode. Values written in are stored as
    they are (never ``bytes``). Once :meth:`unpack_all` ran (``pending`` is
    then false) its owner swaps it for a plain dict, which reads faster.

    An entry that does not decode to a valid value (it passed the snap's
    checksum, so only a bug writes one) raises :class:`CorruptJournal` naming
    the snap: a clear error, never a wrong answer.
    """

    __slots__ = ("_decode", "pending", "source")

    def __init__(
        self, packed: dict[bytes, bytes], decode: Callable[[bytes, bytes], _V], source: str
    ) -> None:
        super().__init__(packed)  # type: ignore[arg-type]
        self._decode = decode
        self.pending = bool(packed)  # some value may still be packed
        self.source = source

    def _unpack(self, key: bytes, packed: bytes) -> _V:
        try:
            value = self._decode(key, packed)
        except (msgpack.UnpackException, KeyError, TypeError, ValueError, IndexError) as exc:
            raise CorruptJournal(
                self.source,
                None,
                f"the snapshot entry of session {key.hex()} is malformed ({exc}); remove "
                "the file and it is rebuilt from the log",
            ) from exc
        dict.__setitem__(self, key, value)
        return value

    def unpack_all(self) -> None:
        """Decode every entry still packed (a full listing reads them all anyway)."""
        if not self.pending:
            return
        # Every entry becomes a few long-lived containers: the cyclic GC would
        # walk them again and again meanwhile (as on a restore of old).
        decode, put = self._decode, dict.__setitem__
        k: bytes = b""
        v: Any = b""
        try:
            with gc_paused():
                for k, v in list(dict.items(self)):
                    if isinstance(v, bytes):
                        put(self, k, decode(k, v))
        except (msgpack.UnpackException, KeyError, TypeError, ValueError, IndexError):
            self._unpack(k, v)  # raises the error naming this entry and the snap
            raise
        self.pending = False

    def __getitem__(self, key: bytes) -> _V:
        v: Any = dict.__getitem__(self, key)
        return self._unpack(key, v) if type(v) is bytes else v

    def get(self, key: bytes, default: Any = None) -> Any:
        v = dict.get(self, key, _ABSENT)
        if v is _ABSENT:
            return default
        return self._unpack(key, v) if type(v) is bytes else v

    def pop(self, key: bytes, default: Any = _ABSENT) -> Any:
        v = dict.get(self, key, _ABSENT)
        if v is _ABSENT:
            if default is _ABSENT:
                raise KeyError(key)
            return default
        if type(v) is bytes:
            v = self._unpack(key, v)
        dict.__delitem__(self, key)
        return v

    def setdefault(self, key: bytes, default: Any = None) -> Any:
        if key in self:
            return self[key]
        dict.__setitem__(self, key, default)
        return default

    def popitem(self) -> tuple[bytes, _V]:
        k: bytes
        v: Any
        k, v = dict.popitem(self)
        if type(v) is bytes:
            v = self._unpack(k, v)
            dict.__delitem__(self, k)
        return k, v

    def values(self) -> ValuesView[_V]:  # type: ignore[override]
        self.unpack_all()
        return dict.values(self)

    def items(self) -> ItemsView[bytes, _V]:  # type: ignore[override]
        self.unpack_all()
        return dict.items(self)

    def copy(self) -> dict[bytes, _V]:
        self.unpack_all()
        return dict(dict.items(self))

    def __eq__(self, other: object) -> bool:
        self.unpack_all()
        if isinstance(other, PackedEntries):
            other.unpack_all()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __repr__(self) -> str:
        self.unpack_all()
        return f"PackedEntries({dict.__repr__(self)})"

    def __reduce__(self) -> Any:
        return (dict, (self.copy(),))


# Level 1: as small as level 3 on these maps (ids, counters, short strings), faster.
_entries_codec = Codec(level=1, max_payload=1 << 30)


def pack_entries(entries: dict[bytes, Any], pack: Callable[[Any], bytes]) -> bytes:
    """The snap form of per-session entries: one zstd frame of a msgpack map
    from session id to that session's own msgpack bytes.

    Entries still packed since the restore are written back as they are.
    """
    packed = {k: v if type(v) is bytes else pack(v) for k, v in dict.items(entries)}
    frame: bytes = _entries_codec._cctx().compress(msgpack.packb(packed, use_bin_type=True))
    return frame


def unpack_entries(
    blob: bytes, decode: Callable[[bytes, bytes], _V], source: str
) -> PackedEntries[_V]:
    """The entries of :func:`pack_entries`' ``blob``, each left packed until read.

    The snap's checksum passed, so only a bug writes a blob that fails here:
    :class:`CorruptJournal` naming the snap, never a wrong answer.
    """
    try:
        state = _check_packed(unpack_bounded(_entries_codec.decompress(blob)))
    except (CorruptPayload, TypeError) as exc:
        raise CorruptJournal(
            source,
            None,
            f"malformed session entries ({exc}); remove the file and it is rebuilt from the log",
        ) from exc
    return PackedEntries(state, decode, source)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic GC paused meanwhile (as it was after): for building many
    long-lived objects without cycles, which it would otherwise walk again and
    again as they pile up."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def unpack_all(entries: dict[bytes, Any]) -> None:
    """Decode every entry of ``entries`` still packed (nothing to do for a plain dict)."""
    if type(entries) is PackedEntries:
        entries.unpack_all()


def settled(entries: dict[bytes, _V]) -> dict[bytes, _V]:
    """``entries`` as a plain dict if it is a :class:`PackedEntries` with nothing
    left packed (a plain dict's reads are C calls, not Python ones), else itself."""
    if type(entries) is PackedEntries and not entries.pending:
        return dict(dict.items(entries))
    return entries


def _check_packed(state: Any) -> dict[bytes, bytes]:
    """``state`` if it maps 16-byte session ids to bytes, else TypeError.

    Runs over every session: C-level passes only (``join`` refuses anything
    but bytes-like items, and msgpack gives ``bytes`` or non-bytes-like types).
    """
    if type(state) is not dict:
        raise TypeError(f"a {type(state).__name__}, not a map")
    b"".join(state)
    b"".join(state.values())
    if not set(map(len, state)) <= {16}:
        raise TypeError("a key is not a 16-byte session id")
    return state
