"""The model on the wire (event schema 4): msgspec msgpack, typed decoders.

Schema 4 stores the model as msgspec encodes it (journal/_model.py): structs
as maps keyed by field name, fields at their default left out, response
items, content parts and summaries tagged under ``"type"`` with their
Responses-API strings (verbatim unknown data under ``"?"``), UUIDs as 16-byte
``bin``, datetimes as msgpack timestamps (extension -1, UTC), enums as their
values, tuples as arrays. Any msgpack library reads it. Decoding validates in
C and builds the model directly: no intermediate dicts.

Older schemas (1-3, short keys and tags) are read by ``journal._wire_v3``.

The session metadata keeps its short-key map (``metadata_to_wire``): it is
the session index's own format, which the index folds key by key
(projections/_index.py), in every schema version.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from journal._errors import CorruptPayload, InvalidArgument
from journal._model import (
    CheckpointMetadata,
    ConversationContext,
    ConversationSnapshot,
    MessageSnapshot,
    OperatingMode,
    SessionMetadata,
    SessionState,
    _enc_hook,
)

__all__ = [
    "ModeHistory",
    "checked",
    "checkpoint_meta_from_wire",
    "checkpoint_meta_to_wire",
    "datetime_from_wire",
    "datetime_to_wire",
    "decode",
    "encode",
    "metadata_from_wire",
    "metadata_to_wire",
    "validated",
]

_T = TypeVar("_T")
ModeHistory = tuple[tuple[OperatingMode, datetime], ...]

_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook, uuid_format="bytes")
_DECODERS: dict[Any, msgspec.msgpack.Decoder[Any]] = {
    t: msgspec.msgpack.Decoder(t)
    for t in (
        tuple[MessageSnapshot, ...],
        ConversationContext,
        ModeHistory,
        SessionState,
        ConversationSnapshot,
        SessionMetadata,
        CheckpointMetadata,
    )
}


def encode(value: object, what: str) -> bytes:
    """msgpack bytes of a model value (unchecked: see :func:`checked`)."""
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError, OverflowError, NotImplementedError) as exc:
        raise InvalidArgument(f"{what} cannot be encoded as msgpack: {exc}") from exc


def _decoder(typ: Any) -> msgspec.msgpack.Decoder[Any]:
    dec = _DECODERS.get(typ)
    if dec is None:
        dec = _DECODERS[typ] = msgspec.msgpack.Decoder(typ)
    return dec


def decode(data: bytes | memoryview, typ: type[_T] | Any, what: str) -> _T:
    """Decode schema-4 bytes as ``typ``; damage raises :class:`CorruptPayload`."""
    try:
        value: _T = _decoder(typ).decode(data)
    except (msgspec.DecodeError, InvalidArgument) as exc:
        raise CorruptPayload(f"malformed {what} payload: {exc}") from exc
    return value


def checked(value: object, typ: type[_T] | Any, what: str) -> bytes:
    """``value`` encoded, after proving it decodes as ``typ`` (in C).

    A wrong type anywhere raises :class:`InvalidArgument` naming the class
    and field (``InputText.text at messages[3].item.content[0].text: ...``).
    The cost is one decode of what is written: a save checks only its delta.
    """
    data = encode(value, what)
    try:
        _decoder(typ).decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(_explain(value, str(exc), what)) from None
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc}") from None
    return data


def validated(value: _T, typ: type[_T] | Any, what: str) -> _T:
    """``value`` as msgspec decodes it after encoding it: checked as
    :func:`checked` does, and normalised (a UUID or datetime given as text
    becomes one), for code that reads its fields."""
    data = encode(value, what)
    try:
        out: _T = _decoder(typ).decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(_explain(value, str(exc), what)) from None
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc}") from None
    return out


_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]")


def _explain(value: object, message: str, what: str) -> str:
    """msgspec's ``Expected X, got Y - at `$.a[0].b``` with the class and field
    named: the last attribute on the way, and the object it belongs to."""
    text, _, path = message.rpartition(" - at `")
    if not text:
        return f"{what}: {message}"
    path = path.rstrip("`")
    node: Any = value
    name = ""
    for m in _STEP.finditer(path):
        try:
            if m.group(1) is not None:
                name = f"{type(node).__name__}.{m.group(1)}"
                node = getattr(node, m.group(1))
            else:
                node = node[int(m.group(2))]
        except (AttributeError, IndexError, KeyError, TypeError):
            break
    where = what + path[1:]
    return f"{name} at {where}: {text}" if name else f"{where}: {text}"


# -- the session index's metadata map (every schema version) ------------------------------
#
# SessionMetadata: "id", "ti" title, "ca"/"ua"/"la" created/updated/accessed,
# "mc" message_count, "tc" turn_count, "mo" mode, "md" model, "tg" tags,
# "fv" favorite, "fs" file_size, "cr" compression_ratio, "v" format_version,
# "ck" checkpoints. CheckpointMetadata: "id", "n" name, "at" created_at,
# "mi" message_index, "d" description. UUIDs are 16 bytes, datetimes int
# microseconds since the Unix epoch (UTC).

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def datetime_to_wire(dt: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    d = dt - _EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def _dt(n: object) -> datetime:
    # timedelta * int is exact integer arithmetic; out of range raises OverflowError.
    if type(n) is not int:
        raise CorruptPayload(f"expected a timestamp (int microseconds), got {type(n).__name__}")
    return _EPOCH + _MICROSECOND * n


def datetime_from_wire(n: object) -> datetime:
    """The UTC datetime of ``n`` microseconds since the Unix epoch."""
    try:
        return _dt(n)
    except OverflowError as exc:
        raise CorruptPayload(f"timestamp {n!r} is out of range") from exc


def checkpoint_meta_to_wire(c: CheckpointMetadata) -> dict[str, Any]:
    """The index's map of a :class:`CheckpointMetadata`."""
    w: dict[str, Any] = {
        "id": c.id.bytes,
        "n": c.name,
        "at": datetime_to_wire(c.created_at),
        "mi": c.message_index,
    }
    if c.description is not None:
        w["d"] = c.description
    return w


def _checkpoint_fields(w: Any) -> dict[str, Any]:
    return {
        "id": w["id"],
        "name": w["n"],
        "created_at": _dt(w["at"]),
        "message_index": w["mi"],
        "description": w.get("d"),
    }


def checkpoint_meta_from_wire(w: object) -> CheckpointMetadata:
    """Inverse of :func:`checkpoint_meta_to_wire`; raises :class:`CorruptPayload`."""
    try:
        value: CheckpointMetadata = msgspec.convert(_checkpoint_fields(w), CheckpointMetadata)
        return value
    except (KeyError, TypeError, ValueError, OverflowError, msgspec.ValidationError) as exc:
        raise _malformed("checkpoint metadata", exc) from exc


def metadata_to_wire(m: SessionMetadata) -> dict[str, Any]:
    """The index's map of a :class:`SessionMetadata`."""
    return {
        "id": m.id.bytes,
        "ti": m.title,
        "ca": datetime_to_wire(m.created_at),
        "ua": datetime_to_wire(m.updated_at),
        "la": datetime_to_wire(m.last_accessed),
        "mc": m.message_count,
        "tc": m.turn_count,
        "mo": m.current_mode.value,
        "md": m.model,
        "tg": list(m.tags),
        "fv": m.is_favorite,
        "fs": m.file_size,
        "cr": m.compression_ratio,
        "v": m.format_version,
        "ck": [checkpoint_meta_to_wire(c) for c in m.checkpoints],
    }


def metadata_from_wire(w: object) -> SessionMetadata:
    """Inverse of :func:`metadata_to_wire`; raises :class:`CorruptPayload`.

    Keys older data lacks take the field defaults; unknown keys are ignored.
    """
    try:
        if type(w) is not dict:
            raise TypeError(f"expected a map, got {type(w).__name__}")
        try:  # the encoder writes every key: subscripts are cheaper than get()
            mc, tc, mo, md, tg = w["mc"], w["tc"], w["mo"], w["md"], w["tg"]
            fv, fs, cr, v, ck = w["fv"], w["fs"], w["cr"], w["v"], w["ck"]
        except KeyError:  # older data: defaults for what is missing
            get = w.get
            mc, tc, mo, md = get("mc", 0), get("tc", 0), get("mo", "plan"), get("md", "")
            tg, fv, fs, cr = get("tg", ()), get("fv", False), get("fs", 0), get("cr", 1.0)
            v, ck = get("v", 3), get("ck", ())
        if type(ck) is not list and type(ck) is not tuple:
            raise TypeError(f"checkpoints: expected an array, got {type(ck).__name__}")
        fields = {
            "id": w["id"],
            "title": w["ti"],
            "created_at": _dt(w["ca"]),
            "updated_at": _dt(w["ua"]),
            "last_accessed": _dt(w["la"]),
            "message_count": mc,
            "turn_count": tc,
            "current_mode": mo,
            "model": md,
            "tags": tg,
            "is_favorite": fv,
            "file_size": fs,
            "compression_ratio": cr,
            "format_version": v,
            "checkpoints": [_checkpoint_fields(c) for c in ck] if ck else (),
        }
        value: SessionMetadata = msgspec.convert(fields, SessionMetadata)
        return value
    except (KeyError, TypeError, ValueError, OverflowError, msgspec.ValidationError) as exc:
        raise _malformed("session metadata", exc) from exc


def _malformed(what: str, exc: Exception) -> CorruptPayload:
    detail = f"missing key {exc}" if type(exc) is KeyError else str(exc)
    return CorruptPayload(f"malformed {what} payload: {detail}")
