"""A local S3 API for the replication tests: moto's server mode, and a fault proxy.

:func:`moto_server` starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1 with a
free port. :class:`FaultProxy` stands between the client and that server (an
HTTP proxy in this process) and, by rule, answers a request itself with a 500
or a 503 SlowDown, forwards it and then drops the connection unanswered
(the object is stored, the client never hears so: what a timeout looks like
to it), or holds it until released (a process killed mid-upload). Requests
are forwarded byte for byte.

A lost answer is a dropped connection rather than a wait past the client's
read timeout: with a timeout short enough for a test, an ordinary request
under load outlasts it too (a spurious failure), and a stalled request
forwarded late lands after the client has moved on (a range outside the
chain). Dropping after the upstream answered fixes the order: stored, then
failed.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs

__all__ = ["FaultProxy", "Rule", "free_port", "moto_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@attrs.define
class Rule:
    """Act on the next ``times`` requests with this method whose path contains ``path``."""

    method: str
    path: str
    action: str  # "500", "503", "drop" (forward, then close unanswered), "hold" (until release)
    times: int = 1
    seen: int = 0


_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


class FaultProxy:
    """An HTTP proxy to ``upstream`` that injects faults by :class:`Rule`."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.rules: list[Rule] = []
        self.requests: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.held = threading.Event()  # set when a "hold" rule caught a request
        self._mutex = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add(self, rule: Rule) -> Rule:
        with self._mutex:
            self.rules.append(rule)
        return rule

    def _match(self, method: str, path: str) -> Rule | None:
        with self._mutex:
            self.requests.append((method, path))
            for r in self.rules:
                if r.method == method and r.path in path and r.seen < r.times:
                    r.seen += 1
                    return r
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        rule = self._match(h.command, h.path)
        if rule is not None and rule.action in ("500", "503"):
            data = _INTERNAL if rule.action == "500" else _SLOWDOWN
            h.send_response(int(rule.action))
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        if rule is not None and rule.action == "hold":
            self.held.set()
            self.release.wait(30)
            h.close_connection = True
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
        headers["Host"] = f"{self.upstream[0]}:{self.upstream[1]}"
        conn.request(h.command, h.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if rule is not None and rule.action == "drop":
            # The object is stored; the client's answer is lost.
            h.close_connection = True
            return
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def count(self, pred: Callable[[str, str], bool]) -> int:
        with self._mutex:
            return sum(1 for m, p in self.requests if pred(m, p))

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
