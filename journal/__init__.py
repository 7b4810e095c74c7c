"""agcx: an event-sourced, append-only journal of AI coding-agent sessions.

The store (what agents use)::

    from journal import SessionStore
    with SessionStore.open() as store:          # ~/.agcodex/history
        store.save_session(sid, metadata, conversation, state)
        meta, conversation, state = store.load_session(sid)

* ``SessionStore``, ``AsyncSessionStore`` (the same as coroutines, anyio):
  save, load, list, search, tag, favorite, rename, delete, purge,
  checkpoints, history (the audit trail), statistics, compact, ``at(when)``
  (a read-only ``PointInTimeView`` / ``AsyncPointInTimeView`` of the past),
  import_legacy.
* The model (what is saved): ``SessionMetadata``, ``ConversationSnapshot``,
  ``MessageSnapshot``, ``SessionState`` and the items of a conversation
  (``Message``, ``Reasoning``, ``FunctionCall``, ...; ``item_from_json`` /
  ``item_to_json`` for Responses-API JSON).
* Reports: ``StoreStatistics``, ``HistoryEntry``, ``CompactionReport``,
  ``PurgeReport``, ``ImportReport``, ``RecoverReport``, ``SalvageReport``.
* Recovery: ``recover(source, target, at=when)`` writes a journal as of a point in
  time; ``salvage(source, target)`` copies what is readable of a damaged one.
* The journal core: ``Journal``, ``Record``, ``Entry``, ``EventType``.
* Errors: every one derives from ``JournalError`` (``SessionNotFound``,
  ``SessionPurged``, ``InvalidArgument``, ``CorruptJournal``, ...).

``journal.__all__`` lists the whole public API; everything else lives in
private modules.
"""

import importlib
from typing import TYPE_CHECKING, Any

from journal._errors import (
    CheckpointNotFound,
    CorruptJournal,
    CorruptPayload,
    HorizonError,
    InvalidArgument,
    JournalBusy,
    JournalClosed,
    JournalError,
    JournalFull,
    JournalPoisoned,
    ReadOnlyJournal,
    RecordNotFound,
    RecordTooLarge,
    SessionConflict,
    SessionNotFound,
    SessionPurged,
    ThreadDeleted,
    ThreadShared,
    UnsafeJournal,
    UnsupportedVersion,
)
from journal._events import EventType
from journal._fs import FileSystem
from journal._log import Durability, Entry, Journal, JournalStatistics
from journal._model import (
    AstIndexState,
    CheckpointMetadata,
    ContentItem,
    ConversationContext,
    ConversationSnapshot,
    EmbeddingCacheState,
    FileContext,
    FilterSettings,
    FunctionCall,
    FunctionCallOutput,
    InputImage,
    InputText,
    LocalShellAction,
    LocalShellCall,
    Message,
    MessageMetadata,
    MessageSnapshot,
    OperatingMode,
    OutputText,
    Reasoning,
    ReasoningSummary,
    ResponseItem,
    SessionMetadata,
    SessionState,
    SummaryText,
    ToolCallMetadata,
    UnknownContent,
    UnknownItem,
    UnknownSummary,
    item_from_json,
    item_to_json,
)
from journal._redact import RedactionPolicy
from journal._segment import Record

if TYPE_CHECKING:
    from journal._aio import AsyncPointInTimeView, AsyncSessionStore
    from journal._codex import CodexImportReport
    from journal._compact import CompactionReport, PurgeReport
    from journal._import import ImportItem, ImportProblem, ImportReport
    from journal._recover import RecoverReport, SalvageReport, recover, salvage
    from journal._replica_restore import ReplicaReport, recover_from_replica, verify_replica
    from journal._replicate import (
        CorruptReplica,
        ReplicaBusy,
        ReplicaDiverged,
        ReplicaError,
        ReplicationStatistics,
        Replicator,
        ReplicaUnavailable,
        replicate,
    )
    from journal._scrub import ScrubReport, SecretFinding
    from journal._store import (
        HistoryEntry,
        PointInTimeView,
        SessionPage,
        SessionStore,
        StoreStatistics,
    )

# The store stands above the projections, which import the journal core: it is
# loaded on first use so that ``import projections`` and ``import journal``
# work in either order.
_LAZY = {
    "AsyncPointInTimeView": "journal._aio",
    "AsyncSessionStore": "journal._aio",
    "CodexImportReport": "journal._codex",
    "CompactionReport": "journal._compact",
    "PurgeReport": "journal._compact",
    "HistoryEntry": "journal._store",
    "ImportItem": "journal._import",
    "ImportProblem": "journal._import",
    "ImportReport": "journal._import",
    "PointInTimeView": "journal._store",
    "RecoverReport": "journal._recover",
    "SalvageReport": "journal._recover",
    "ScrubReport": "journal._scrub",
    "SecretFinding": "journal._scrub",
    "SessionPage": "journal._store",
    "SessionStore": "journal._store",
    "StoreStatistics": "journal._store",
    "recover": "journal._recover",
    "salvage": "journal._recover",
    "CorruptReplica": "journal._replicate",
    "ReplicaBusy": "journal._replicate",
    "ReplicaDiverged": "journal._replicate",
    "ReplicaError": "journal._replicate",
    "ReplicaReport": "journal._replica_restore",
    "ReplicaUnavailable": "journal._replicate",
    "ReplicationStatistics": "journal._replicate",
    "Replicator": "journal._replicate",
    "recover_from_replica": "journal._replica_restore",
    "replicate": "journal._replicate",
    "verify_replica": "journal._replica_restore",
}


def __dir__() -> list[str]:
    # The public API, the lazily loaded names too (not the module's plumbing).
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'journal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AstIndexState",
    "AsyncPointInTimeView",
    "AsyncSessionStore",
    "CheckpointMetadata",
    "CheckpointNotFound",
    "CodexImportReport",
    "CompactionReport",
    "ContentItem",
    "ConversationContext",
    "ConversationSnapshot",
    "CorruptJournal",
    "CorruptPayload",
    "CorruptReplica",
    "Durability",
    "EmbeddingCacheState",
    "Entry",
    "EventType",
    "FileContext",
    "FileSystem",
    "FilterSettings",
    "FunctionCall",
    "FunctionCallOutput",
    "HistoryEntry",
    "HorizonError",
    "ImportItem",
    "ImportProblem",
    "ImportReport",
    "InputImage",
    "InputText",
    "InvalidArgument",
    "Journal",
    "JournalBusy",
    "JournalClosed",
    "JournalError",
    "JournalFull",
    "JournalPoisoned",
    "JournalStatistics",
    "LocalShellAction",
    "LocalShellCall",
    "Message",
    "MessageMetadata",
    "MessageSnapshot",
    "OperatingMode",
    "OutputText",
    "PointInTimeView",
    "PurgeReport",
    "ReadOnlyJournal",
    "Reasoning",
    "ReasoningSummary",
    "Record",
    "RecordNotFound",
    "RecordTooLarge",
    "RecoverReport",
    "RedactionPolicy",
    "ReplicaBusy",
    "ReplicaDiverged",
    "ReplicaError",
    "ReplicaReport",
    "ReplicaUnavailable",
    "ReplicationStatistics",
    "Replicator",
    "ResponseItem",
    "SalvageReport",
    "ScrubReport",
    "SecretFinding",
    "SessionConflict",
    "SessionMetadata",
    "SessionNotFound",
    "SessionPage",
    "SessionPurged",
    "SessionState",
    "SessionStore",
    "StoreStatistics",
    "SummaryText",
    "ThreadDeleted",
    "ThreadShared",
    "ToolCallMetadata",
    "UnknownContent",
    "UnknownItem",
    "UnknownSummary",
    "UnsafeJournal",
    "UnsupportedVersion",
    "item_from_json",
    "item_to_json",
    "recover",
    "recover_from_replica",
    "replicate",
    "salvage",
    "verify_replica",
]
