"""Secrets already in a journal: finding them, and rewriting them out.

``scan`` decodes every record (nested message blobs too, whatever dictionary
they use) and applies the store's redaction rules (journal/_redact.py) to
what a save would have redacted: messages, context (environment variables by
name), metadata, state, checkpoint names and conversations, tags, titles.
A dictionary's own bytes are searched too: one trained on messages holding a
secret may hold the secret. A finding names the record and the kind, never
the value.

``scrub`` is purge's machinery (journal/_compact.py, journal/_rewrite.py)
applied to secrets instead of a session, with the same crash safety (new
segments written and synced under new names, one manifest switch, then the
old files removed) and the same clean-up of copies:

1. seal the active segment, so every record is in a sealed one;
2. find the records holding secrets, and the sessions whose saved messages
   hold any; a dictionary is dropped when it was trained on such a session or
   its bytes hold a candidate, and every blob compressed with a dropped
   dictionary is written again without one;
3. rewrite each segment holding such a record with the record's secrets
   replaced by markers (same seq, time, type and session);
4. remove projection snapshots and quarantined tails (copies of journal
   bytes), then append ``SecretsScrubbed`` (counts only) to the new segment.

Records appended by other processes after step 1 are not rewritten: with
redaction on (the default) they hold no secret.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
import msgpack

from journal._compact import (
    _dictionary_of,
    _exclusive,
    _scan_segments,
    _without_dictionary,
    replace_segments,
)
from journal._dictionary import read_dictionary_event
from journal._events import SCHEMA_VERSION, EventType, blob_of, event_name, unpack_blob, upcast
from journal._format import SegmentInfo
from journal._log import Entry, Journal
from journal._model import ConversationContext, ConversationSnapshot, SessionState
from journal._payloads import (
    MESSAGES,
    context_of,
    conversation_of,
    messages_of,
    modes_of,
    state_of,
)
from journal._redact import Redactor
from journal._rewrite import write_segment_files
from journal._segment import Record
from journal._wire import ModeHistory, checked

if TYPE_CHECKING:
    from journal._store import SessionStore

__all__ = ["ScrubReport", "SecretFinding", "scan", "scrub"]

# Event keys whose values are the model (of saves and checkpoints, any schema
# version; decoded to model objects to be judged by the same rules as a save,
# and written back in schema 4) or nested blobs of plain data.
_Part = tuple[Callable[[Any], Any], Callable[[Any], Any]]
_MODEL_EVENTS = (EventType.SESSION_SAVED, EventType.CHECKPOINT_CREATED)
_ENCODE: dict[str, Callable[[Any], bytes]] = {
    "msgs": lambda v: blob_of(checked(v, MESSAGES, "messages")),
    "conv": lambda v: blob_of(checked(v, ConversationSnapshot, "conversation")),
    "cx": lambda v: checked(v, ConversationContext, "context"),
    "mh": lambda v: checked(v, ModeHistory, "mode history"),
    "st": lambda v: checked(v, SessionState, "state"),
}


def _model_part(j: Journal, rec: Record, ev: dict[str, Any], key: str) -> Any:
    v = ev.get("v", 1)
    what = f"seq {rec.seq} {key}"
    if key == "msgs":
        return messages_of(ev, what, j.dictionaries)
    if key == "conv":
        return conversation_of(v, ev["conv"], what)
    return {"cx": context_of, "mh": modes_of, "st": state_of}[key](v, ev[key])


@attrs.frozen
class SecretFinding:
    """A record holding secrets: where, and of which kinds (never the values)."""

    seq: int
    event: str
    session_id: UUID | None
    kinds: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event": self.event,
            "session_id": None if self.session_id is None else str(self.session_id),
            "kinds": list(self.kinds),
        }


@attrs.frozen
class ScrubReport:
    """What a scrub rewrote."""

    scrub_seq: int
    records_rewritten: int
    dictionaries_removed: int
    blobs_recompressed: int
    segments_rewritten: int
    kinds: tuple[tuple[str, int], ...]
    files_removed: tuple[str, ...]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["kinds"] = dict(self.kinds)
        d["files_removed"] = list(self.files_removed)
        return d


def _parts(j: Journal, rec: Record, ev: dict[str, Any]) -> Iterator[tuple[str, Any, bool]]:
    """``(key, value as the rules judge it, whether it is the model)`` for each
    part of an event that may hold text."""
    model = rec.event_type in _MODEL_EVENTS
    for key, value in ev.items():
        if key in ("v", "cid", "id", "base", "n"):
            continue
        if model and key in _ENCODE:
            yield key, _model_part(j, rec, ev, key), True
        elif key == "lines" and type(value) is bytes:  # CodexLines: parsed JSON lines
            yield key, unpack_blob(value, f"seq {rec.seq} {key}", j.dictionaries), False
        else:
            yield key, value, False


def _dictionary_kinds(r: Redactor, ev: dict[str, Any]) -> list[str]:
    data, _ = read_dictionary_event(ev)
    return [kind for _, _, kind in r.spans(bytes(data).decode("latin-1"))]


def _kinds(j: Journal, r: Redactor, rec: Record) -> list[str]:
    """The kinds of the secrets in one record."""
    ev = upcast(rec.event_type, j.decode(rec))
    if rec.event_type == EventType.DICTIONARY_TRAINED:
        return _dictionary_kinds(r, ev)
    # Every other event, of every type (those of later versions too): any
    # string in its payload is judged, as ``_clean`` would rewrite it.
    return [kind for _, value, _ in _parts(j, rec, ev) for kind in r.findings(value)]


def scan(j: Journal, r: Redactor, *, until_seq: int | None = None) -> list[SecretFinding]:
    """Every record of ``j`` that holds a secret by ``r``'s rules, in seq order."""
    out = []
    for rec in j.scan(until_seq=until_seq):
        kinds = _kinds(j, r, rec)
        if kinds:
            out.append(
                SecretFinding(rec.seq, event_name(rec.event_type), rec.session_id, tuple(kinds))
            )
    return out


def _clean(j: Journal, r: Redactor, rec: Record) -> Record | None:
    """``rec`` with its secrets replaced by markers (blobs written without a
    dictionary; a save or checkpoint of an older schema written as schema 4
    whole), or ``None`` when it holds none."""
    ev = upcast(rec.event_type, j.decode(rec))
    out = dict(ev)
    changed = False
    models: dict[str, Any] = {}
    for key, value, is_model in _parts(j, rec, ev):
        if is_model:
            models[key] = value
        clean = r.redact(value)
        if clean is value:
            continue
        changed = True
        if is_model:
            models[key] = clean
        elif key == "lines":
            out[key] = blob_of(msgpack.packb(clean, use_bin_type=True))
        else:
            out[key] = clean
    if not changed:
        return None
    if models:
        for key, value in models.items():
            out[key] = _ENCODE[key](value)
        out["v"] = SCHEMA_VERSION
    compress = rec.event_type not in _MODEL_EVENTS
    codec, data = j._codec.encode(out, compress=compress)
    return attrs.evolve(rec, codec=codec, payload=data)


def scrub(store: SessionStore, r: Redactor, actor: str | None = None) -> ScrubReport:
    """Rewrite every secret ``r`` finds out of the journal; see the module docstring."""
    started = time.perf_counter()
    j = store.journal
    with _exclusive(j, "scrub"):
        store._sync()
        j.seal_active()
        sealed = [s for s in j.manifest.segments if s.sealed and s.count]
        # Pass 1: which sessions' saved messages hold secrets, which dictionaries go.
        tainted: set[bytes] = set()
        doomed: set[int] = set()
        dictionaries: dict[int, frozenset[bytes]] = {}
        kinds: Counter[str] = Counter()
        for rec in _scan_segments(j, sealed) if sealed else ():
            found = _kinds(j, r, rec)
            kinds.update(found)
            if found and rec.event_type == EventType.SESSION_SAVED:
                tainted.add(rec.session)
            if rec.event_type == EventType.DICTIONARY_TRAINED:
                data, dictionaries[rec.seq] = read_dictionary_event(
                    upcast(rec.event_type, j.decode(rec))
                )
                # A candidate the rules reject in text may still be a secret cut
                # short where the trainer cut its sample: dropped too.
                if found or r.suspect(bytes(data)):
                    doomed.add(rec.seq)
        doomed |= {seq for seq, sources in dictionaries.items() if sources & tainted}
        # Pass 2: rewrite the segments that hold any of it.
        replaced: list[SegmentInfo] = []
        new: list[SegmentInfo] = []
        rewritten = recompressed = 0
        generation = j.manifest.generation + 1
        for s in sealed:
            keep: list[Record] = []
            touched = False
            for rec in _scan_segments(j, [s]):
                if rec.seq in doomed:
                    touched = True
                    continue
                if doomed and _dictionary_of(j, rec) in doomed:
                    rec = _without_dictionary(j, rec)
                    recompressed += 1
                    touched = True
                clean = _clean(j, r, rec)
                if clean is not None:
                    rec = clean
                    rewritten += 1
                    touched = True
                keep.append(rec)
            if not touched:
                continue
            new += write_segment_files(
                j, keep, generation=generation, first_base=s.base_seq, max_size=1 << 62
            )
            replaced.append(s)
        files = replace_segments(j, replaced, new)
        store._trainer.reset()  # its samples are messages as saved: they may hold secrets
        store._after_rewrite()
        payload: dict[str, Any] = {
            "v": 1,
            "records": rewritten,
            "dictionaries": len(doomed),
            "segments": len(replaced),
            "kinds": dict(sorted(kinds.items())),
            # A projection whose replay began at an earlier manifest read
            # records since rewritten, and rebuilds when it meets this event.
            "gen": j.manifest.generation,
        }
        if actor:
            payload["actor"] = actor
        seq = store._append([Entry(EventType.SECRETS_SCRUBBED, payload)])[0]
        return ScrubReport(
            seq,
            rewritten,
            len(doomed),
            recompressed,
            len(replaced),
            tuple(sorted(kinds.items())),
            tuple(files),
            time.perf_counter() - started,
        )
