"""Trained zstd dictionaries for message blobs.

A save's new messages are a few KiB of msgpack, compressed alone; zstd finds
little to reuse in so little text (0.48 of the msgpack on the bench workload).
A dictionary trained from the messages already saved in the same segment takes
them to 0.34, at the same CPU cost a blob. The layout (docs/FORMAT.md,
"Dictionaries"):

* a ``DictionaryTrained`` event (no session) holds one dictionary:
  ``{"v": 1, "d": bin, "src": [16-byte ids of the sessions it was trained on]}``;
* a message blob compressed with it is ``0xC1 | u64 seq of that event | zstd
  frame`` (``0xC1`` is never the first byte of msgpack; a plain frame starts
  with ``0x28``). The frame declares its content size and the dictionary's id.

The rules that keep every blob decodable, and purge's promise:

1. A writer samples only messages saved while one segment is active, and
   forgets the samples when another becomes active. A purge always seals the
   active segment, so no sample taken before a purge is trained on after it.
2. A blob may refer to a dictionary only if, under the commit lock, that
   dictionary's record is in the active segment (the store checks it in the
   batch's ``prepare`` and writes the blob plain otherwise). Once a segment is
   sealed, no new reference to its dictionaries appears.
3. A dictionary is used only after its record was acknowledged: a reference
   always points back, to a record that a torn tail cannot take away alone.
4. Compaction keeps the dictionaries that kept or later records refer to.
   Purge removes every dictionary whose ``src`` names the purged session and
   writes the blobs that referred to it again without a dictionary.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import zstandard

from journal._codec import BLOB_CAP, ZSTD_MAGIC, Codec
from journal._errors import CorruptPayload, InvalidArgument, RecordNotFound
from journal._segment import Record

__all__ = [
    "DICTIONARY_SIZE",
    "DICT_BLOB",
    "MAX_DICTIONARY",
    "REF_SIZE",
    "TRAIN_BYTES",
    "Dictionary",
    "DictionaryCache",
    "Trainer",
    "blob_reference",
    "dictionary_event",
    "read_dictionary_event",
]

DICT_BLOB = 0xC1
_MARK = bytes((DICT_BLOB,))
_REF = struct.Struct("<BQ")
REF_SIZE = _REF.size
# Measured on the bench workload (docs/BENCHMARKS.md): dictionaries trained
# on the first 1 MiB or on the first 4 MiB of a segment's messages compress
# the rest alike (0.344 vs 0.342), and 64 KiB does nearly as well as 112 KiB.
TRAIN_BYTES = 1 << 20
DICTIONARY_SIZE = 112 << 10
MAX_DICTIONARY = 1 << 20  # larger is damage, not a dictionary this build writes
_MAX_SAMPLE = 64 << 10  # whole conversations of full saves teach little per byte
_MIN_COMPRESS = 64  # with a dictionary, even short messages shrink
_CACHED = 16


def blob_reference(blob: bytes) -> int | None:
    """The seq of the dictionary a message blob needs, or ``None`` for a plain blob."""
    if blob[:1] != _MARK:
        return None
    if len(blob) < _REF.size + 4:
        raise CorruptPayload(f"dictionary blob of {len(blob)} bytes is truncated")
    return int(_REF.unpack_from(blob)[1])


def dictionary_event(data: bytes, sources: Iterable[bytes]) -> dict[str, Any]:
    """The payload of a ``DictionaryTrained`` event."""
    return {"v": 1, "d": data, "src": sorted(sources)}


def read_dictionary_event(payload: dict[str, Any]) -> tuple[bytes, frozenset[bytes]]:
    """The dictionary bytes and source sessions of a ``DictionaryTrained`` payload."""
    data, src = payload.get("d"), payload.get("src")
    if type(data) is not bytes or not 8 <= len(data) <= MAX_DICTIONARY:
        raise CorruptPayload("DictionaryTrained: 'd' is not a dictionary's bytes")
    if type(src) is not list or not all(type(s) is bytes and len(s) == 16 for s in src):
        raise CorruptPayload("DictionaryTrained: 'src' is not a list of session ids")
    return data, frozenset(src)


class Dictionary:
    """One dictionary, with the compressors and decompressors of each thread."""

    __slots__ = ("_local", "_zdict", "level", "seq", "sources")

    def __init__(self, seq: int, data: bytes, sources: frozenset[bytes], level: int = 3) -> None:
        self.seq = seq
        self.sources = sources
        self.level = level
        try:
            self._zdict = zstandard.ZstdCompressionDict(data)
            # The digested form is built once, not for every blob.
            self._zdict.precompute_compress(level=level)
        except zstandard.ZstdError as exc:
            raise CorruptPayload(f"dictionary at seq {seq} does not load: {exc}") from exc
        self._local = threading.local()

    def pack(self, raw: bytes) -> bytes | None:
        """``raw`` msgpack as a dictionary blob, or ``None`` when that does not pay."""
        if len(raw) < _MIN_COMPRESS:
            return None
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = zstandard.ZstdCompressor(
                dict_data=self._zdict, write_content_size=True
            )
        frame: bytes = c.compress(raw)
        if len(frame) + _REF.size >= len(raw):
            return None
        return _REF.pack(DICT_BLOB, self.seq) + frame

    def unpack(self, blob: bytes, codec: Codec) -> bytes:
        """The msgpack bytes of a blob made by :meth:`pack` (bounds checked first)."""
        frame = blob[_REF.size :]
        if frame[:4] != ZSTD_MAGIC:
            raise CorruptPayload("dictionary blob does not hold a zstd frame")
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = zstandard.ZstdDecompressor(dict_data=self._zdict)
        return codec.decompress(frame, d)


class DictionaryCache:
    """The dictionaries a journal's blobs refer to, read on first use."""

    def __init__(
        self,
        read: Callable[[int], Record],
        decode: Callable[[Record], Any],
        dictionary_type: int,
    ) -> None:
        self._read = read
        self._decode = decode
        self._type = dictionary_type
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, Dictionary] = OrderedDict()
        self.codec = Codec(max_payload=BLOB_CAP)

    def get(self, seq: int) -> Dictionary:
        """The dictionary whose record has this seq (:class:`CorruptPayload` if none)."""
        with self._lock:
            d = self._cache.get(seq)
            if d is not None:
                self._cache.move_to_end(seq)
                return d
        try:
            rec = self._read(seq)
        except RecordNotFound as exc:
            raise CorruptPayload(f"a blob refers to dictionary seq {seq}: {exc}") from exc
        if rec.event_type != self._type:
            raise CorruptPayload(f"a blob refers to seq {seq} as a dictionary; it is not one")
        payload = self._decode(rec)
        if type(payload) is not dict:
            raise CorruptPayload(f"dictionary at seq {seq}: payload is not a map")
        data, sources = read_dictionary_event(payload)
        d = Dictionary(seq, data, sources)
        with self._lock:
            self._cache[seq] = d
            while len(self._cache) > _CACHED:
                self._cache.popitem(last=False)
        return d

    def unpack(self, blob: bytes) -> bytes:
        """The msgpack bytes of a dictionary blob."""
        seq = blob_reference(blob)
        if seq is None:
            raise InvalidArgument("not a dictionary blob")
        return self.get(seq).unpack(blob, self.codec)

    def forget(self) -> None:
        """Drop every cached dictionary (after a purge removed some)."""
        with self._lock:
            self._cache.clear()


class Trainer:
    """One writer's dictionary for the active segment: samples, trains, hands it out.

    Thread-safe. :meth:`offer` says when enough is sampled; the caller then
    calls :meth:`train` (outside its locks: training takes ~0.1-0.3 s),
    appends the result and :meth:`install`\\ s it under the seq it got.
    """

    def __init__(
        self,
        *,
        train_bytes: int = TRAIN_BYTES,
        size: int = DICTIONARY_SIZE,
        level: int = 3,
    ) -> None:
        self.train_bytes = train_bytes
        self.size = size
        self.level = level
        self._lock = threading.Lock()
        self._base = -1  # the active segment samples and dictionary belong to
        self._samples: list[bytes] = []
        self._sources: set[bytes] = set()
        self._sampled = 0
        self._want = train_bytes
        self._training = False
        self._dict: Dictionary | None = None

    def current(self, active_base: int) -> Dictionary | None:
        """The dictionary blobs may use while ``active_base`` is the active segment."""
        d = self._dict
        return d if d is not None and d.seq >= active_base else None

    def offer(self, active_base: int, seq: int, session: bytes, raw: bytes) -> bool:
        """Sample the messages (msgpack ``raw``) saved at ``seq`` while
        ``active_base`` is the active segment; ``True`` when the caller should
        now :meth:`train`. A save that landed in a segment sealed since is not
        sampled: a purge may have sealed it."""
        with self._lock:
            if active_base != self._base:
                self._reset(active_base)
            if (
                self._dict is not None
                or self._training
                or seq < active_base
                or len(raw) > _MAX_SAMPLE
            ):
                return False
            self._samples.append(raw)
            self._sources.add(session)
            self._sampled += len(raw)
            if self._sampled < self._want:
                return False
            self._training = True
            return True

    def train(self) -> tuple[int, bytes, frozenset[bytes]] | None:
        """Train on the samples: ``(segment base, dictionary, sources)``, or
        ``None`` if zstd could not (it then waits for twice the samples)."""
        with self._lock:
            base, sources = self._base, frozenset(self._sources)
            samples: list[bytes | bytearray | memoryview[int]] = list(self._samples)
        try:
            zdict = zstandard.train_dictionary(self.size, samples, level=self.level)
        except zstandard.ZstdError:
            self.cancel(retry=True)
            return None
        return base, zdict.as_bytes(), sources

    def install(self, base: int, seq: int, data: bytes, sources: frozenset[bytes]) -> None:
        """Use the dictionary appended at ``seq`` (trained for segment ``base``)."""
        d = Dictionary(seq, data, sources, self.level)
        with self._lock:
            self._training = False
            if base == self._base:
                self._dict = d
                self._samples, self._sources, self._sampled = [], set(), 0

    def adopt(self, d: Dictionary, active_base: int) -> None:
        """Use a dictionary another writer trained for the active segment."""
        with self._lock:
            if active_base != self._base:
                self._reset(active_base)
            if self._dict is None and d.seq >= active_base:
                self._dict = d
                self._samples, self._sources, self._sampled = [], set(), 0

    def cancel(self, *, retry: bool = False) -> None:
        """Training or its append failed: keep sampling (for twice as long if ``retry``)."""
        with self._lock:
            self._training = False
            if retry:
                self._want *= 2

    def reset(self) -> None:
        """Forget the samples and the dictionary (after a purge)."""
        with self._lock:
            self._reset(-1)

    def _reset(self, base: int) -> None:
        self._base = base
        self._samples, self._sources, self._sampled = [], set(), 0
        self._want = self.train_bytes
        self._dict = None

