"""What every projection is: a pure fold over records in seq order."""

from __future__ import annotations

from typing import Any, Protocol

from journal._segment import Record

__all__ = ["Projection"]


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
