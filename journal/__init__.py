"""agcx: an event-sourced, append-only journal of AI coding-agent sessions.

The public API is re-exported here; everything else lives in private modules.
"""

from journal._errors import (
    CheckpointNotFound,
    CorruptJournal,
    CorruptPayload,
    HorizonError,
    InvalidArgument,
    JournalBusy,
    JournalClosed,
    JournalError,
    JournalPoisoned,
    ReadOnlyJournal,
    RecordNotFound,
    RecordTooLarge,
    SessionNotFound,
    UnsupportedVersion,
)
from journal._fs import FileSystem
from journal._log import Durability, Entry, Journal, JournalStatistics
from journal._segment import Record

__all__ = [
    "CheckpointNotFound",
    "CorruptJournal",
    "CorruptPayload",
    "Durability",
    "Entry",
    "FileSystem",
    "HorizonError",
    "InvalidArgument",
    "Journal",
    "JournalBusy",
    "JournalClosed",
    "JournalError",
    "JournalPoisoned",
    "JournalStatistics",
    "ReadOnlyJournal",
    "Record",
    "RecordNotFound",
    "RecordTooLarge",
    "SessionNotFound",
    "UnsupportedVersion",
]
