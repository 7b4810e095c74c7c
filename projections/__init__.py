"""Projections: pure folds of the journal's events into views.

A projection's ``apply(record, event)`` does no I/O; the runner feeds it
records in seq order, persists its state and restores it on open.
"""

from projections._base import Projection
from projections._contents import Chain, SessionContents
from projections._graphs import GraphCheckpoints
from projections._index import SessionIndex
from projections._runner import ProjectionRunner
from projections._stats import EventStatistics

__all__ = [
    "Chain",
    "EventStatistics",
    "GraphCheckpoints",
    "Projection",
    "ProjectionRunner",
    "SessionContents",
    "SessionIndex",
]
