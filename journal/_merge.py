"""The three-way merge of session metadata that makes a save write only what
its caller changed.

An agent builds the metadata it saves from the metadata it last saved or
loaded (its *base*); meanwhile a person or another process may have tagged,
renamed or starred the session. Writing the agent's map as it is would undo
those changes, so a save merges, key by key of the metadata wire map
(``journal._model.metadata_to_wire``):

* the caller left the key as in its base: the journal's current value stays;
* the caller changed it and nobody else did (or both to the same value): the
  caller's value;
* both changed it to different values: the later write, this save, wins and
  the key is reported as overridden, for the audit line. Two exceptions:
  ``tags`` merge as a set (the caller's additions and removals are applied to
  the current tags, so nothing to override), and the timestamps
  ``updated_at`` and ``last_accessed`` take the later of the two times.

Without a base (the store never saw the caller save or load the session) the
caller's map is taken whole, as the last write. The store-owned keys
(``message_count``, ``file_size``, ``compression_ratio``, ``checkpoints``) are
not merged: the store derives them from what it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["MetadataMerge", "merge_metadata", "same"]

# Wire keys: "mc" message_count, "fs" file_size, "cr" compression_ratio, "ck" checkpoints.
STORE_OWNED = frozenset({"mc", "fs", "cr", "ck"})
_TAGS = "tg"
_LATER_WINS = frozenset({"ua", "la"})  # updated_at, last_accessed (int microseconds)


def same(a: object, b: object) -> bool:
    """Equal and of the same type (``True`` is not ``1`` for metadata)."""
    return type(a) is type(b) and a == b


@attrs.frozen
class MetadataMerge:
    """The result of a merge: the map to write, which keys it changes in the
    journal's current map, and which of those overrode a concurrent change."""

    meta: dict[str, Any]
    changed: tuple[str, ...]
    overridden: tuple[str, ...]


def merge_metadata(
    base: Mapping[str, Any] | None,
    mine: Mapping[str, Any],
    held: Mapping[str, Any] | None,
) -> MetadataMerge:
    """Merge the caller's metadata map ``mine`` into the journal's ``held``
    against the caller's ``base`` (module docstring). ``held`` ``None``: the
    session is new (or deleted) and ``mine`` is written as it is."""
    if held is None:
        return MetadataMerge(dict(mine), (), ())
    if base is None:
        base = held  # unknown base: every difference is the caller's change
    out: dict[str, Any] = {}
    overridden: list[str] = []
    for k, m in mine.items():
        if k in STORE_OWNED:
            out[k] = held.get(k, m) if k in ("fs", "cr") else m
            continue
        if k not in held:
            out[k] = m
            continue
        h = held[k]
        b = base.get(k, h)
        if same(m, b):
            out[k] = h
        elif same(h, b) or same(h, m):
            out[k] = m
        elif k == _TAGS and isinstance(m, list) and isinstance(h, list):
            bs = set(b) if isinstance(b, list) else set()
            ms = set(m)
            # The current tags less the ones the caller removed, then its additions.
            tags = [x for x in h if x in ms or x not in bs]
            tags += [x for x in m if x not in bs and x not in tags]
            out[k] = tags
        elif k in _LATER_WINS and type(m) is int and type(h) is int:
            out[k] = max(m, h)
        else:
            out[k] = m
            overridden.append(k)
    for k, h in held.items():  # keys the caller's map lacks (an older encoder's)
        out.setdefault(k, h)
    out.pop("ck", None)
    changed = tuple(k for k, v in out.items() if k not in held or not same(v, held[k]))
    return MetadataMerge(out, changed, tuple(overridden))
