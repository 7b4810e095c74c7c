"""The object-store seam of replication: a flat namespace of immutable objects.

Replication (``journal/_replicate.py``) needs five operations from wherever a
replica lives, and nothing else: put an object (optionally only if it does not
exist yet, or only if it still has a known version), get one, list a prefix,
delete some. Two backends implement them, so the replication logic is written
and tested once against both:

* :class:`FileStore` for ``file:///path`` (a second disk, a NAS mount): an
  object is a file; a put writes a temporary file, syncs it and renames it into
  place, so a reader (or a crash) sees the whole object or none.
* :class:`S3Store` for ``s3://bucket/prefix`` (AWS, MinIO, Ceph, R2, moto),
  through boto3 (the optional extra ``agcx[s3]``). A PUT is atomic on S3 too.
  Configuration is boto3's own: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_PROFILE`` and the shared
  config files; an ``http://`` endpoint is plain HTTP (a local server).
  Conditional writes (``If-None-Match: *``, ``If-Match: <etag>``) make the
  replica's lease safe between machines, as Litestream's S3 leaser does.

Every failure of the store is raised as :class:`ReplicaUnavailable` (worth
retrying: the endpoint is down, slow or throttling) or :class:`ReplicaError`.
Messages name the bucket and key, never a credential: the URL given is kept
only without any ``user:password@`` part.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import threading
import urllib.parse
from collections.abc import Iterable
from typing import Any, Protocol

import attrs

from journal._errors import InvalidArgument, JournalError

__all__ = [
    "FileStore",
    "ObjectInfo",
    "ObjectStore",
    "PreconditionFailed",
    "ReplicaError",
    "ReplicaUnavailable",
    "S3Store",
    "open_store",
    "safe_url",
]


class ReplicaError(JournalError):
    """A replica (object store) refused or failed an operation."""


class ReplicaUnavailable(ReplicaError):
    """The object store cannot be reached or answered with a transient error
    (timeout, 5xx, throttling): nothing was changed, try again later."""


class PreconditionFailed(ReplicaError):
    """A conditional put found the object in another state than required."""


@attrs.frozen
class ObjectInfo:
    """One object of a listing: its key (relative to the store's prefix) and size."""

    key: str
    size: int


class ObjectStore(Protocol):
    """What replication needs from an object store. Keys are relative, ``/``-separated."""

    url: str  # for messages: the URL without credentials

    def put(self, key: str, data: bytes, *, if_absent: bool = False,
            if_version: str | None = None) -> str:
        """Store ``data`` under ``key``; return the new object's version tag.

        ``if_absent``: only if no object has that key; ``if_version``: only if
        the object's version is still that tag. Otherwise :class:`PreconditionFailed`.
        """
        ...

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and version tag, or None if there is none."""
        ...

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, sorted by key."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Remove these objects (a missing one is not an error)."""
        ...

    def close(self) -> None: ...


def safe_url(url: str) -> str:
    """``url`` without any ``user:password@`` part (what messages may show)."""
    p = urllib.parse.urlsplit(url)
    if p.username is None and p.password is None:
        return url
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return urllib.parse.urlunsplit((p.scheme, host, p.path, p.query, p.fragment))


def open_store(url: str, **options: Any) -> ObjectStore:
    """The store a replica URL names: ``file:///path`` or ``s3://bucket[/prefix]``."""
    if not isinstance(url, str):
        raise InvalidArgument(f"replica URL must be a string, got {type(url).__name__}")
    p = urllib.parse.urlsplit(url)
    if p.scheme == "file":
        if p.netloc not in ("", "localhost"):
            raise InvalidArgument(f"file URL must be file:///absolute/path, got {safe_url(url)!r}")
        path = urllib.parse.unquote(p.path)
        if not path.startswith("/"):
            raise InvalidArgument(f"file URL must name an absolute path, got {safe_url(url)!r}")
        return FileStore(path)
    if p.scheme == "s3":
        if p.username is not None or p.password is not None:
            raise InvalidArgument(
                "put no credentials in an s3:// URL: use AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY or an AWS profile"
            )
        bucket = p.netloc
        if not bucket:
            raise InvalidArgument(f"s3 URL must be s3://bucket[/prefix], got {url!r}")
        return S3Store(bucket, p.path.strip("/"), **options)
    raise InvalidArgument(
        f"replica URL must start with s3:// or file://, got {safe_url(url)!r}"
    )


# -- file:// ------------------------------------------------------------------------------


def _check_key(key: str) -> None:
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts) or "\0" in key:
        raise InvalidArgument(f"bad object key {key!r}")


class FileStore:
    """Objects as files under a directory (``file:///path``)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + urllib.parse.quote(self.root)
        self._mutex = threading.Lock()

    def _path(self, key: str) -> str:
        _check_key(key)
        return os.path.join(self.root, *key.split("/"))

    @staticmethod
    def _version(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()[:32]

    def put(self, key: str, data: bytes, *, if_absent: bool = False,
            if_version: str | None = None) -> str:
        path = self._path(key)
        d = os.path.dirname(path)
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                if if_absent:
                    # link() fails if the name exists: an atomic create-if-absent.
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        raise PreconditionFailed(f"{self.url}/{key} already exists") from None
                elif if_version is not None:
                    # Compare-and-swap under a lock on the directory (between
                    # processes on this machine; a NAS needs working flock).
                    with self._dir_lock(d):
                        cur = self._read(path)
                        if cur is None or self._version(cur) != if_version:
                            raise PreconditionFailed(f"{self.url}/{key} changed")
                        os.rename(tmp, path)
                else:
                    os.rename(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            _fsync_dir(d)
        except OSError as exc:
            raise ReplicaUnavailable(f"cannot write {self.url}/{key}: {exc.strerror}") from exc
        return self._version(data)

    @contextlib.contextmanager
    def _dir_lock(self, d: str) -> Any:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _read(path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self._read(self._path(key))
        except OSError as exc:
            raise ReplicaUnavailable(f"cannot read {self.url}/{key}: {exc.strerror}") from exc
        return None if data is None else (data, self._version(data))

    def list(self, prefix: str) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        try:
            for dirpath, dirnames, filenames in os.walk(self.root):
                rel = os.path.relpath(dirpath, self.root)
                base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                # Prune directories that cannot hold a key with the prefix.
                dirnames[:] = [
                    n for n in dirnames
                    if (base + n + "/").startswith(prefix) or prefix.startswith(base + n + "/")
                ]
                for n in filenames:
                    key = base + n
                    if key.startswith(prefix) and ".tmp-" not in n:
                        with contextlib.suppress(FileNotFoundError):
                            out.append(ObjectInfo(key, os.stat(os.path.join(dirpath, n)).st_size))
        except OSError as exc:
            raise ReplicaUnavailable(f"cannot list {self.url}: {exc.strerror}") from exc
        out.sort(key=lambda o: o.key)
        return out

    def delete(self, keys: Iterable[str]) -> None:
        dirs = set()
        for key in keys:
            path = self._path(key)
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ReplicaUnavailable(f"cannot delete {self.url}/{key}: {exc.strerror}") from exc
            dirs.add(os.path.dirname(path))
        for d in dirs:
            with contextlib.suppress(OSError):
                _fsync_dir(d)
            with contextlib.suppress(OSError):
                os.rmdir(d)  # only when it became empty

    def remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed writer left (call while holding the lease)."""
        for dirpath, _, filenames in os.walk(self.root):
            for n in filenames:
                if ".tmp-" in n:
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(dirpath, n))

    def close(self) -> None:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view[: 1 << 30])
        view = view[n:]


def _fsync_dir(d: str) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- s3:// --------------------------------------------------------------------------------

_TRANSIENT_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
    "InternalError", "ServiceUnavailable", "503", "500", "502", "504",
}


class S3Store:
    """Objects in an S3 bucket under a prefix, through boto3.

    ``timeout`` bounds each connect and read; ``attempts`` is boto3's retry
    budget per call (its "standard" mode: exponential backoff with jitter on
    timeouts, 5xx and throttling); what is still failing after it is raised as
    :class:`ReplicaUnavailable` for the caller's own, slower retry loop.
    """

    def __init__(
        self, bucket: str, prefix: str = "", *, timeout: float = 10.0, attempts: int = 3
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ReplicaError(
                "s3:// replicas need boto3: pip install 'agcx[s3]'"
            ) from None
        self.bucket = bucket
        self.prefix = prefix + "/" if prefix else ""
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"mode": "standard", "total_max_attempts": attempts},
        )
        try:
            # The default session reads AWS_ENDPOINT_URL, the keys, AWS_REGION and
            # AWS_PROFILE / the shared config files, as every AWS tool does.
            self._client: Any = boto3.session.Session().client("s3", config=config)
        except Exception as exc:  # a bad profile name, an unreadable config file
            raise ReplicaError(f"cannot configure the S3 client: {_describe(exc)}") from None
        self._missing: tuple[type[BaseException], ...] = (
            self._client.exceptions.NoSuchKey,
        )

    def _fail(self, exc: BaseException, what: str) -> ReplicaError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status in (
                409,
                412,
            ):
                return PreconditionFailed(f"{what}: the object changed")
            msg = f"{what}: {code or status} {exc.response.get('Error', {}).get('Message', '')}"
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                return ReplicaUnavailable(msg.strip())
            return ReplicaError(msg.strip())
        return ReplicaUnavailable(f"{what}: {_describe(exc)}")

    def put(self, key: str, data: bytes, *, if_absent: bool = False,
            if_version: str | None = None) -> str:
        _check_key(key)
        kw: dict[str, Any] = {}
        if if_absent:
            kw["IfNoneMatch"] = "*"
        elif if_version is not None:
            kw["IfMatch"] = if_version
        try:
            r = self._client.put_object(
                Bucket=self.bucket, Key=self.prefix + key, Body=data, **kw
            )
        except Exception as exc:
            raise self._fail(exc, f"cannot write {self.url}/{key}") from None
        return str(r.get("ETag", ""))

    def get(self, key: str) -> tuple[bytes, str] | None:
        _check_key(key)
        try:
            r = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return r["Body"].read(), str(r.get("ETag", ""))
        except self._missing:
            return None
        except Exception as exc:
            from botocore.exceptions import ClientError

            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
                "NoSuchKey",
                "404",
            ):
                return None
            raise self._fail(exc, f"cannot read {self.url}/{key}") from None

    def list(self, prefix: str) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            n = len(self.prefix)
            for page in pages:
                for o in page.get("Contents", ()):
                    out.append(ObjectInfo(o["Key"][n:], int(o["Size"])))
        except Exception as exc:
            raise self._fail(exc, f"cannot list {self.url}") from None
        out.sort(key=lambda o: o.key)
        return out

    def delete(self, keys: Iterable[str]) -> None:
        todo = [self.prefix + k for k in keys]
        for i in range(0, len(todo), 1000):  # DeleteObjects takes 1000 keys at most
            chunk = todo[i : i + 1000]
            try:
                r = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
                )
            except Exception as exc:
                raise self._fail(exc, f"cannot delete from {self.url}") from None
            errors = r.get("Errors") or []
            if errors:
                e = errors[0]
                raise ReplicaUnavailable(
                    f"cannot delete {self.url}/{e.get('Key', '')[len(self.prefix):]}: "
                    f"{e.get('Code', '')} ({len(errors)} keys not deleted)"
                )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()


def _describe(exc: BaseException) -> str:
    """A failure's type and text. botocore's messages name the endpoint and the
    operation, never a secret (keys are only used to sign)."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
        text = os.strerror(exc.errno)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

