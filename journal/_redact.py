"""Secrets never reach the log: redaction before a save is encoded.

An append-only log keeps whatever it is given forever, and replicas copy it.
Before the store encodes an event that stores text, :class:`Redactor`
replaces

* the values of environment variables whose names look secret
  (``ConversationContext.environment_variables``; the globs are in
  ``secret_patterns.toml`` under ``[names]``), and
* every substring of any stored text that matches a known credential format
  (``[[pattern]]`` in the same file),

by a marker ``[REDACTED:<kind>:<hash>]``. The hash is the first 12 hex digits
of HMAC-SHA256 of the secret under the journal's own key (``REDACTION_KEY``,
32 random bytes, 0600, beside ``MANIFEST``, never in a segment): two mentions
of one secret get the same marker, so they stay linkable, while the log, its
segments copied anywhere, or a marker pasted in a bug report, cannot be used
to test guesses of a short password without that key file.

Cost follows the new content, not the session: the store encodes the new
messages first and screens those bytes with one compiled expression (all
patterns joined); only when it finds a candidate are the messages walked
field by field and encoded again. The small objects (metadata, state,
context, checkpoint names) are walked on every save.

The walk works on the model through its public shape (attrs classes or
msgspec Structs, tuples, mappings, strings): it rebuilds only what changed
and returns the very object it was given when nothing did, so a caller's
messages keep their identity (delta saves compare by identity first).
"""

from __future__ import annotations

import contextlib
import enum
import fnmatch
import functools
import hashlib
import hmac
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from typing import Any, TypeVar

import ahocorasick_rs
import attrs
import msgspec

from journal._errors import InvalidArgument, JournalError

__all__ = [
    "KEY_FILE",
    "MARKER_RE",
    "Pattern",
    "RedactionPolicy",
    "Redactor",
    "load_key",
    "load_patterns",
]

_T = TypeVar("_T")
KEY_FILE = "REDACTION_KEY"
_KEY_SIZE = 32
_HASH_DIGITS = 12
ENV_KIND = "env-secret"
MARKER_RE = re.compile(r"\[REDACTED:[a-z0-9-]{1,40}:[0-9a-f]{12}\]")
# The one field whose mapping is judged by its keys' names.
_ENV_FIELD = "environment_variables"


@attrs.frozen
class Pattern:
    """One credential format: ``kind`` names it in markers, ``group`` is the
    part of a match that is the secret."""

    kind: str
    regex: str
    group: int = 0
    match: tuple[str, ...] = ()
    no_match: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()  # one is in every match (any case); () = no screen
    screen: str | None = None  # a looser regex for encoded bytes (default: no lookarounds)


def _pairs(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(k), str(v)) for k, v in items)


@attrs.frozen
class RedactionPolicy:
    """What a store redacts before it encodes a save (see ``journal._redact``).

    ``enabled=False`` stores text as given. ``extra_patterns`` maps a kind
    (lower-case letters, digits, ``-``) to a regular expression whose whole
    match is redacted, checked after the built-in ones (ASCII, Python ``re``
    syntax, flags only in scoped groups such as ``(?i:...)``; it runs over
    every text, as it has no keywords); ``secret_names`` adds
    globs of environment variable names whose values are secret;
    ``allowed_names`` are globs of names never redacted (they win).
    """

    enabled: bool = True
    extra_patterns: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    secret_names: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    allowed_names: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)

    @classmethod
    def off(cls) -> RedactionPolicy:
        """A policy that redacts nothing."""
        return cls(enabled=False)


def load_patterns() -> tuple[tuple[Pattern, ...], tuple[str, ...], tuple[str, ...]]:
    """The built-in patterns and the secret / allowed name globs, from the data file."""
    text = resources.files("journal").joinpath("secret_patterns.toml").read_text("utf-8")
    data = tomllib.loads(text)
    patterns = tuple(
        Pattern(
            p["kind"],
            p["regex"],
            int(p.get("group", 0)),
            tuple(p.get("match", ())),
            tuple(p.get("no_match", ())),
            tuple(p.get("keywords", ())),
            p.get("screen"),
        )
        for p in data["pattern"]
    )
    names = data["names"]
    return patterns, tuple(names["secret"]), tuple(names.get("allowed", ()))


def _without_lookarounds(regex: str) -> str:
    """``regex`` with its lookahead and lookbehind groups removed (it then
    matches wherever it matched, and maybe more)."""
    out: list[str] = []
    i, n = 0, len(regex)
    while i < n:
        c = regex[i]
        if c == "\\":
            out.append(regex[i : i + 2])
            i += 2
        elif c == "[":
            j = _class_end(regex, i)
            out.append(regex[i:j])
            i = j
        elif c == "(" and regex.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            i = _group_end(regex, i)
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _class_end(regex: str, i: int) -> int:
    """The index just past the character class that starts at ``i``."""
    j = i + 1
    if j < len(regex) and regex[j] == "^":
        j += 1
    if j < len(regex) and regex[j] == "]":
        j += 1
    while j < len(regex) and regex[j] != "]":
        j += 2 if regex[j] == "\\" else 1
    return j + 1


def _group_end(regex: str, i: int) -> int:
    """The index just past the group that opens at ``i``."""
    depth, j = 0, i
    while j < len(regex):
        c = regex[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            j = _class_end(regex, j)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return j


def _globs(globs: Iterable[str]) -> re.Pattern[str] | None:
    parts = [fnmatch.translate(g.upper()) for g in globs]
    return re.compile("|".join(parts)) if parts else None


class _Rules:
    """A policy's patterns and name globs, compiled."""

    def __init__(self, policy: RedactionPolicy) -> None:
        builtin, secret, allowed = load_patterns()
        extra = []
        for kind, regex in policy.extra_patterns:
            if not re.fullmatch(r"[a-z0-9-]{1,40}", kind):
                raise InvalidArgument(
                    f"a redaction pattern's kind must be 1-40 of a-z, 0-9 and '-', got {kind!r}"
                )
            if not regex.isascii():
                raise InvalidArgument(f"redaction pattern {kind!r} is not ASCII")
            try:
                re.compile(f"(?:{regex})", re.ASCII)
            except re.error as exc:
                raise InvalidArgument(
                    f"redaction pattern {kind!r} is not valid ({exc}); flags go in a "
                    "scoped group, (?i:...)"
                ) from None
            extra.append(Pattern(kind, regex))
        self.patterns: tuple[Pattern, ...] = (*builtin, *extra)
        # ASCII semantics (\s, \w, case folding): an ASCII pattern then matches
        # a text exactly where its bytes form matches the text's UTF-8, so the
        # screen over encoded bytes misses nothing the text patterns would find.
        self.compiled = [(p, re.compile(p.regex, re.ASCII)) for p in self.patterns]
        # The keywords first, all in one pass (Aho-Corasick): most texts hold
        # none, and then that pass is all a text or a save's messages cost.
        # Measured on 1.7 KB of the bench's messages: 4.5 us, against 60-86 us
        # for one substring search per keyword and 35-140 us for a regex
        # alternation of them. A pattern without keywords (a policy's own)
        # runs on every text.
        words = sorted({k.lower() for p in self.patterns for k in p.keywords})
        self.by_word = [
            [i for i, p in enumerate(self.patterns) if w in (k.lower() for k in p.keywords)]
            for w in words
        ]
        self.always = [i for i, p in enumerate(self.patterns) if not p.keywords]
        self.ac = ahocorasick_rs.AhoCorasick(words)
        self.ac_bytes = ahocorasick_rs.BytesAhoCorasick([w.encode("ascii") for w in words])
        # The screen runs over msgpack, where the byte before a string is its
        # length (an ASCII letter for a str8 of 65-90 or 97-122 bytes) and the
        # byte after it the next value's header: the lookarounds that keep a
        # secret's neighbours out would misjudge those, so the screen goes
        # without them (it finds a superset; the text patterns then decide).
        self.screens = [
            re.compile((p.screen or _without_lookarounds(p.regex)).encode("ascii"))
            for p in self.patterns
        ]
        self.secret = _globs((*secret, *policy.secret_names))
        self.allowed = _globs((*allowed, *policy.allowed_names))


@functools.lru_cache(maxsize=16)
def _compile(policy: RedactionPolicy) -> _Rules:
    return _Rules(policy)


class Redactor:
    """A compiled policy plus the journal's key: redacts text and model objects."""

    def __init__(self, policy: RedactionPolicy, key: bytes) -> None:
        rules = _compile(policy)  # compiled once per policy: a store's open stays cheap
        self.policy = policy
        self.patterns = rules.patterns
        self._compiled = rules.compiled
        self._by_word = rules.by_word
        self._always = rules.always
        self._ac = rules.ac
        self._ac_bytes = rules.ac_bytes
        self._screens = rules.screens
        self._secret = rules.secret
        self._allowed = rules.allowed
        self._names: dict[str, bool] = {}
        self._key = key

    # -- text --------------------------------------------------------------------------

    def marker(self, kind: str, secret: str) -> str:
        """The marker that stands for ``secret``: its kind and keyed hash."""
        digest = hmac.new(self._key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return f"[REDACTED:{kind}:{digest.hexdigest()[:_HASH_DIGITS]}]"

    def suspect(self, data: bytes) -> bool:
        """Whether encoded bytes may hold a secret (a cheap screen, one scan)."""
        hits = self._ac_bytes.find_matches_as_indexes(data.lower(), overlapping=True)
        if not hits and not self._always:
            return False
        return any(self._screens[i].search(data) for i in self._candidates(hits))

    def _candidates(self, hits: list[tuple[int, int, int]]) -> list[int]:
        """The patterns to run, in file order, given the keyword matches."""
        found = set(self._always)
        for w, _, _ in hits:
            found.update(self._by_word[w])
        return sorted(found)

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """The secrets in ``text``: ``(start, end, kind)``, in order, not overlapping
        (where two overlap, the earlier pattern in the data file wins)."""
        hits = self._ac.find_matches_as_indexes(text.lower(), overlapping=True)
        if not hits and not self._always:
            return []
        runs = [self._compiled[i] for i in self._candidates(hits)]
        # Markers already in the text (a redacted text saved again) are never
        # part of a secret: redacting twice changes nothing more.
        markers = (
            [(m.start(), m.end(), "") for m in MARKER_RE.finditer(text)]
            if "[REDACTED:" in text
            else []
        )
        found: list[tuple[int, int, str]] = []
        for p, rx in runs:
            for m in rx.finditer(text):
                start, end = m.span(p.group)
                if start >= end:
                    continue
                if any(start < e and s < end for s, e, _ in (*markers, *found)):
                    continue
                found.append((start, end, p.kind))
        found.sort()
        return found

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by its marker (the same object if none)."""
        spans = self.spans(text)
        if not spans:
            return text
        out, at = [], 0
        for start, end, kind in spans:
            out += [text[at:start], self.marker(kind, text[start:end])]
            at = end
        out.append(text[at:])
        return "".join(out)

    def secret_name(self, name: str) -> bool:
        """Whether an environment variable of this name holds a secret."""
        known = self._names.get(name)
        if known is not None:
            return known
        up = name.upper()
        secret = not (self._allowed is not None and self._allowed.fullmatch(up)) and (
            self._secret is not None and self._secret.fullmatch(up) is not None
        )
        if len(self._names) < 4096:  # names repeat save after save
            self._names[name] = secret
        return secret

    def screen(self, obj: _T, encoded: bytes, env: Mapping[str, str] | None = None) -> _T:
        """:meth:`redact` for a small object whose encoded bytes (any encoding
        that keeps its strings as UTF-8) and environment variables, if any,
        are given: walked only when those hold a candidate."""
        if self.suspect(encoded) or (
            env is not None and any(v and self.secret_name(k) for k, v in env.items())
        ):
            return self.redact(obj)
        return obj

    def env_value(self, name: str, value: str) -> str:
        """The value to store for environment variable ``name``."""
        kind = self._env_kind(name, value)
        return self.text(value) if kind is None else self.marker(kind, value)

    # -- the model ---------------------------------------------------------------------

    def redact(self, obj: _T) -> _T:
        """``obj`` with every secret in it redacted; ``obj`` itself when there is none."""
        out: _T = self._walk(obj, None)
        return out

    def _walk(self, obj: Any, field: str | None) -> Any:
        t = type(obj)
        if t is str:
            return self.text(obj)
        if obj is None or t in _ATOMS or isinstance(obj, enum.Enum):
            return obj
        if t is tuple or t is list:
            new = [self._walk(x, None) for x in obj]
            if all(a is b for a, b in zip(new, obj, strict=True)):
                return obj
            return t(new)
        if isinstance(obj, Mapping):
            changed = False
            items = []
            for k, v in obj.items():
                if field == _ENV_FIELD and type(k) is str and type(v) is str:
                    nv: Any = self.env_value(k, v)
                else:
                    nv = self._walk(v, None)
                changed |= nv is not v
                items.append((k, nv))
            return dict(items) if changed else obj
        names = _field_names(t)
        if names is None:
            return obj  # something else (bytes, datetime, UUID, ...): no text
        changes = {}
        for attr, init in names:
            v = getattr(obj, attr)
            nv = self._walk(v, init)
            if nv is not v:
                changes[init] = nv
        return replace(obj, **changes) if changes else obj

    def findings(self, obj: Any) -> Iterator[str]:
        """The kind of every secret in ``obj`` (a model object or a decoded
        event: maps, lists, strings), never the secret itself."""
        yield from self._find(obj, None)

    def _find(self, obj: Any, field: str | None) -> Iterator[str]:
        t = type(obj)
        if t is str:
            for _, _, kind in self.spans(obj):
                yield kind
            return
        if obj is None or t in _ATOMS or isinstance(obj, enum.Enum):
            return
        if t is tuple or t is list:
            for x in obj:
                yield from self._find(x, None)
            return
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                if field == _ENV_FIELD and type(k) is str and type(v) is str:
                    yield from self._find_env(k, v)
                else:
                    yield from self._find(v, None)
            return
        names = _field_names(t)
        for attr, init in names or ():
            yield from self._find(getattr(obj, attr), init)

    def _env_kind(self, name: str, value: str) -> str | None:
        """The kind of a whole environment variable value that is a secret by
        its name, else ``None`` (its text is then searched like any other)."""
        if not value or not self.secret_name(name) or MARKER_RE.fullmatch(value):
            return None
        spans = self.spans(value)
        return spans[0][2] if len(spans) == 1 and spans[0][:2] == (0, len(value)) else ENV_KIND

    def _find_env(self, name: str, value: str) -> Iterator[str]:
        kind = self._env_kind(name, value)
        if kind is not None:
            yield kind
        else:
            yield from self._find(value, None)


_ATOMS = frozenset({bool, int, float, bytes, bytearray, memoryview})
_FIELDS: dict[type, tuple[tuple[str, str], ...] | None] = {}


def _field_names(t: type) -> tuple[tuple[str, str], ...] | None:
    """``(attribute, init argument)`` of each field of an attrs class or msgspec
    Struct; ``None`` for any other type."""
    try:
        return _FIELDS[t]
    except KeyError:
        pass
    names: tuple[tuple[str, str], ...] | None = None
    if attrs.has(t):
        names = tuple((f.name, f.alias or f.name) for f in attrs.fields(t))
    elif isinstance(t, type) and issubclass(t, msgspec.Struct):
        names = tuple((f, f) for f in t.__struct_fields__)
    _FIELDS[t] = names
    return names


def replace(obj: _T, **changes: Any) -> _T:
    """A copy of an attrs instance or msgspec Struct with ``changes``."""
    if isinstance(obj, msgspec.Struct):
        return msgspec.structs.replace(obj, **changes)
    return attrs.evolve(obj, **changes)  # type: ignore[misc]


def load_key(root: str, *, create: bool) -> bytes | None:
    """The journal's redaction key, made (32 random bytes, 0600) when missing
    and ``create``; ``None`` when missing and not ``create``.

    Made beside the journal, never in a segment; several processes racing to
    make it agree on one (written to a temporary name, then linked into
    place, which fails if another process linked first).
    """
    path = os.path.join(root, KEY_FILE)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                return None
        else:
            with os.fdopen(fd, "rb") as f:
                key = f.read(_KEY_SIZE + 1)
            if len(key) != _KEY_SIZE:
                raise JournalError(
                    f"{path} holds {len(key)} bytes, not the {_KEY_SIZE} of a redaction key; "
                    "remove it to make a new one (markers written so far will not link "
                    "with new ones)"
                )
            return key
        tmp = f"{path}.tmp.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # left by a crash of an earlier process with this pid
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, os.urandom(_KEY_SIZE))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
        dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    raise JournalError(f"could not read the redaction key {path}")
