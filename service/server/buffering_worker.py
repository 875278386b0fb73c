"""gunicorn's gthread worker that reads each request whole in its event loop before a thread sees it.

gthread hands a connection to a thread as soon as its first byte arrives, and
the thread then blocks until the headers and body are in: 16 clients that send
one byte every few seconds hold every thread of two workers, and no one else
is answered. Here the poller reads the request line, headers and
(Content-Length or chunked) body without blocking; a thread gets the
connection only once the request is complete (or malformed, or over the body
limit, which the app refuses at once). A request that has not arrived
``NNSERVE_READ_TIMEOUT`` seconds after its connection opened (or its first byte on a
kept-alive connection) is answered 408 and closed. Slow clients then cost
memory (up to the body limit each), not threads: a buffering proxy in front
(deploy/nginx.conf) is still the answer to many of them.

The errors gunicorn answers itself, before the app sees a request (414 for a request line over
``limit_request_line``, 431 for headers over their limits, 400 for a malformed request line or header),
leave in the error shape of the API the request line names, like every other answer: gunicorn picks the
status and logs it, this worker writes the JSON body instead of gunicorn's HTML page.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import threading
import time
from functools import partial
from http import HTTPStatus
from typing import Any

import orjson
from gunicorn.workers.gthread import ThreadWorker

from service import config
from service.server.errors import clip, error_body

HEAD_LIMIT = 64 * 1024  # beyond this without a blank line, gunicorn's parser refuses the headers itself
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n", re.I)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.I)
_EXPECT = re.compile(rb"\r\nexpect:[ \t]*100-continue", re.I)


def request_complete(data: bytes | bytearray, max_body: int) -> bool:
    """Whether ``data`` holds a whole request, or enough to let gunicorn and the app answer it."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return len(data) > HEAD_LIMIT
    head = bytes(data[: end + 2])
    if _EXPECT.search(head):  # the client waits for "100 Continue", which gunicorn sends
        return True
    body = len(data) - end - 4
    if _CHUNKED.search(head):
        return data.endswith(b"0\r\n\r\n") or body > max_body
    match = _CONTENT_LENGTH.search(head)
    return match is None or body >= int(match.group(1)) or int(match.group(1)) > max_body


def error_response(data: bytes | bytearray, status: int, message: str) -> bytes:
    """A whole HTTP answer that closes the connection, in the error shape of the API ``data``'s request line
    names: ``{"error"}`` under /v2, the v1 shape elsewhere."""
    v2 = b" /v2/" in bytes(data[:256]).split(b"\r\n", 1)[0]  # the request line, whole or in part
    body = orjson.dumps({"error": clip(message)} if v2 else error_body(status, message))
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


def timeout_response(data: bytes | bytearray, seconds: float) -> bytes:
    """The 408 sent to a request that did not arrive in time."""
    return error_response(data, 408, f"the request did not arrive within {seconds:g} seconds (NNSERVE_READ_TIMEOUT)")


class _PageCatcher:
    """The client socket as gunicorn's ``handle_error`` sees it: what it writes (its HTML page) is kept, not sent."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.written = bytearray()

    def sendall(self, data: bytes) -> None:
        self.written += data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BufferingThreadWorker(ThreadWorker):
    """``worker_class`` of ``nnserve serve``: gthread, with requests read whole before a thread takes them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = config.from_environ()
        self.read_timeout = float(settings["NNSERVE_READ_TIMEOUT"])
        self.max_body = int(settings["NNSERVE_MAX_BODY_BYTES"])
        self.arriving: dict[Any, tuple[bytearray, float]] = {}  # conn -> (bytes so far, deadline)
        self.request_head = threading.local()  # .data: the first bytes of the request this thread handles

    def enqueue_req(self, conn: Any) -> None:
        if conn.parser is not None and conn.parser.unreader.buf.getvalue():
            super().enqueue_req(conn)  # a pipelined request gunicorn has already read
            return
        conn.sock.setblocking(False)
        self.arriving[conn] = (bytearray(), time.monotonic() + self.read_timeout)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))

    def _readable(self, conn: Any, _sock: Any) -> None:
        data, _deadline = self.arriving[conn]
        try:
            chunk = conn.sock.recv(256 * 1024)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away
            self._forget(conn)
            self.nr_conns -= 1
            conn.close()
            return
        data += chunk
        if request_complete(data, self.max_body):
            self._forget(conn)
            conn.nnserve_arrived = data
            conn.data_ready = True
            super().enqueue_req(conn)

    def _forget(self, conn: Any) -> None:
        del self.arriving[conn]
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)

    def handle(self, conn: Any) -> Any:
        self.request_head.data = bytes((getattr(conn, "nnserve_arrived", None) or b"")[:256])
        if getattr(conn, "nnserve_arrived", None) is not None:
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(conn.nnserve_arrived)
            conn.nnserve_arrived = None  # the parser holds the one copy it reads from
        return super().handle(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's answer to a request it could not parse (it picks the status and logs), as JSON."""
        page = _PageCatcher(client)
        super().handle_error(req, page, addr, exc)
        status_line = bytes(page.written).split(b"\r\n", 1)[0].split(b" ")
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 500
        phrase = HTTPStatus(status).phrase
        message = f"{phrase}: {exc}" if status < 500 else phrase  # a server fault's text stays in the log
        with contextlib.suppress(OSError):
            client.sendall(error_response(getattr(self.request_head, "data", b""), status, message))

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn, (data, deadline) in list(self.arriving.items()):
            if deadline > now:
                continue
            self._forget(conn)
            with contextlib.suppress(OSError):
                conn.sock.send(timeout_response(data, self.read_timeout))
            self.nr_conns -= 1
            conn.close()
