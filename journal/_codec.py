"""Payload codec: msgpack, optionally zstd-compressed, decoded within bounds.

The codec byte of a record says how its payload is stored:

* ``RAW`` (0): msgpack bytes as they are (small payloads: compression would
  not pay for its frame header);
* ``ZSTD`` (1): one zstd frame of msgpack bytes; the frame always declares its
  content size, and the reader checks it against the cap before decompressing,
  because zstandard allocates whatever the frame header claims.

Codec 2 (zstd with a dictionary) is reserved by the format; this version
neither writes nor reads it and reports such records as unsupported.
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack
import zstandard

from journal._errors import CorruptPayload, InvalidArgument

__all__ = ["RAW", "ZSTD", "ZSTD_DICT", "Codec", "raw_size", "unpack_bounded"]

RAW = 0
ZSTD = 1
ZSTD_DICT = 2

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BLOB_CAP = 256 << 20  # decompressed size a nested blob's frame may declare


class Codec:
    """Encodes payloads for records and decodes them with hard limits.

    One instance is shared by every thread of a journal: the zstd contexts,
    which are not thread-safe, live in thread-local storage.
    """

    def __init__(self, *, level: int = 3, min_compress: int = 128, max_payload: int) -> None:
        if not 1 <= level <= 22:
            raise InvalidArgument(f"compression level must be 1..22, got {level}")
        self.level = level
        self.min_compress = min_compress
        self.max_payload = max_payload
        self._local = threading.local()

    def _cctx(self) -> Any:
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = zstandard.ZstdCompressor(level=self.level, write_content_size=True)
        return c

    def _dctx(self) -> Any:
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = zstandard.ZstdDecompressor()
        return d

    def encode(self, payload: Any, *, compress: bool = True) -> tuple[int, bytes]:
        """Return ``(codec, bytes)`` for a msgpack-able payload."""
        try:
            raw: bytes = msgpack.packb(payload, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidArgument(f"payload cannot be encoded as msgpack: {exc}") from exc
        if not compress or len(raw) < self.min_compress:
            return RAW, raw
        packed: bytes = self._cctx().compress(raw)
        # Compression must pay for the decompression every reader will do: a
        # payload that is mostly an already-compressed blob is stored raw.
        if len(packed) < len(raw) * 0.9:
            return ZSTD, packed
        return RAW, raw

    def decode(self, codec: int, data: bytes | memoryview) -> Any:
        """Decode a stored payload; any damage raises :class:`CorruptPayload`."""
        if codec == ZSTD:
            raw = self.decompress(data)
        elif codec == RAW:
            raw = bytes(data)
        else:
            raise CorruptPayload(f"unknown payload codec {codec}")
        return unpack_bounded(raw)

    def decompress(self, data: bytes | memoryview, dctx: Any = None) -> bytes:
        """Decompress one zstd frame whose declared size is within ``max_payload``
        (with ``dctx``, a decompressor that holds the frame's dictionary)."""
        data = bytes(data)
        if data[:4] != ZSTD_MAGIC:
            raise CorruptPayload("payload is not a zstd frame")
        try:
            size = zstandard.frame_content_size(data)
        except zstandard.ZstdError as exc:
            raise CorruptPayload(f"bad zstd frame header: {exc}") from exc
        if size < 0:
            raise CorruptPayload("zstd frame does not declare its content size")
        if size > self.max_payload:
            raise CorruptPayload(
                f"zstd frame declares {size} bytes, more than the cap of {self.max_payload}"
            )
        try:
            out: bytes = (dctx or self._dctx()).decompress(data, max_output_size=size)
        except zstandard.ZstdError as exc:
            raise CorruptPayload(f"zstd frame does not decompress: {exc}") from exc
        if len(out) != size:
            raise CorruptPayload(f"zstd frame gave {len(out)} bytes, declared {size}")
        return out


def unpack_bounded(raw: bytes) -> Any:
    """msgpack-decode ``raw`` with every container bounded by the input's size.

    No element can be longer than the input itself, so limits tied to
    ``len(raw)`` refuse hostile length prefixes before allocating; the C
    unpacker's fixed stack refuses pathological nesting.
    """
    n = len(raw)
    try:
        return msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=False,  # legacy unknown items may carry non-str keys
            max_str_len=n,
            max_bin_len=n,
            max_array_len=n,
            max_map_len=n // 2,
            max_ext_len=n,
        )
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise CorruptPayload(f"payload is not valid msgpack: {exc!r}") from exc


def raw_size(codec: int, data: bytes | memoryview) -> int:
    """Uncompressed size of a stored payload, read from its frame header only."""
    if codec == ZSTD:
        try:
            return max(0, int(zstandard.frame_content_size(bytes(data[:18]))))
        except zstandard.ZstdError:
            return len(data)
    return len(data)
