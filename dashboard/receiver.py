"""`taskdash receive`: event lines POSTed by other machines, appended to the spool durably.

Schedulers on other hosts send OpenLineage RunEvents with OpenLineage's HTTP transport
(`POST /api/v1/lineage`, one event a request, optionally gzip-compressed) or lines of our own
contract (`POST /api/v1/events`, JSON lines). Each request is authenticated by a bearer token,
bounded in size (compressed and decompressed), and checked line by line with the ingestor's own
rules (`spool.decode_event_lines` and the believable time window): one bad line refuses the
whole request (400) and nothing of it is written. A good request's lines are appended to this
process's own events file with one write and fsync'd before the 2xx answer, so a crash after the
answer loses nothing and the ingestor never sees half a line. The receiver only appends: it
reads nothing back, and the dashboard server stays read-only.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import signal
import ssl
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tornado.httpserver
import tornado.netutil
import tornado.web
from tornado.log import access_log

from . import bad_lines
from .spool import SpoolError, SpoolWriter, decode_event_lines, events_dir

TOKEN_ENV = "TASKDASH_RECEIVE_TOKEN"
#: A token shorter than this is refused: it could be guessed (`secrets.token_urlsafe(32)` gives 43).
MIN_TOKEN_CHARS = 16
#: A request body's limit, as sent and once decompressed. An event line of the ingestor may be up
#: to 8 MiB; an Airflow DAG run's START with its task tree is tens of kB.
MAX_BODY_BYTES = 4 << 20
LINEAGE_PATH = "/api/v1/lineage"
EVENTS_PATH = "/api/v1/events"
#: A client that stops sending for this long is disconnected (it holds a connection, nothing else).
IDLE_SECONDS = 60


class ReceiverError(Exception):
    """The receiver cannot start as asked; the message is for the operator."""


class BadRequest(ValueError):
    """A request body that is refused as a whole; the message says why, for the sender."""


def read_token(token_file: str | None, environ=os.environ) -> str:
    """The bearer token senders must present: the first line of `token_file`, else $TASKDASH_RECEIVE_TOKEN."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ReceiverError(f"cannot read the token file {token_file}: {exc}") from None
        source = f"the token file {token_file}"
    else:
        token = environ.get(TOKEN_ENV, "").strip()
        source = f"${TOKEN_ENV}"
    if not token:
        raise ReceiverError(f"no token: set ${TOKEN_ENV} or give --token-file (senders must present it as "
                            "'Authorization: Bearer <token>'; make one with: python -c \"import secrets; "
                            "print(secrets.token_urlsafe(32))\")")
    if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable() or " " in token:
        raise ReceiverError(f"the token in {source} must be at least {MIN_TOKEN_CHARS} printable ASCII characters "
                            "without spaces")
    return token


def checked_lines(body: bytes, lineage: bool) -> list[bytes]:
    """The event lines a request body stands for, each checked as the ingestor will read it; raise
    BadRequest (naming the line) if any is not an event the ingestor would take."""
    if lineage:
        # One JSON document (OpenLineage's transport sends one event a request). Checked whole first:
        # in strict JSON a raw CR or LF can only be whitespace between tokens, so it then becomes a
        # space and the event one line.
        body = body.strip()
        one_line = body.replace(b"\r", b" ").replace(b"\n", b" ")
        if one_line != body:
            _check(body, "the body")
        return [_check(one_line, "the body")]
    lines = []
    for number, raw in enumerate(body.split(b"\n"), 1):
        raw = raw.removesuffix(b"\r")
        if raw.strip():
            lines.append(_check(raw, f"line {number}"))
    if not lines:
        raise BadRequest("no event lines in the body (one JSON object a line)")
    return lines


def _check(raw: bytes, where: str) -> bytes:
    try:
        events = decode_event_lines(raw)
    except SpoolError as exc:
        raise BadRequest(f"{where}: {exc}") from None
    for event in events:
        if event["kind"] == "status" and (problem := bad_lines.out_of_window(event["ts"], event["trigger_time"])):
            raise BadRequest(f"{where}: {problem.removesuffix(': the event is skipped')}")
    return raw.removeprefix(b"\xef\xbb\xbf")


def gunzip(body: bytes, limit: int) -> bytes:
    """A gzip body decompressed, never holding more than `limit` + 1 bytes of it: a small body
    that inflates to gigabytes (a zip bomb) is refused after `limit`, not inflated."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid gzip: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"the body decompresses to over {limit:,} bytes")
    if not inflater.eof:
        raise BadRequest("the body is not valid gzip: it is cut short")
    return data


class TooLarge(BadRequest):
    """A body over the size limit (413)."""


class Receiver:
    """One receiving process: its events file in the spool, the writer thread and the HTTP routes."""

    def __init__(self, spool: str | Path, token: str, max_body_bytes: int = MAX_BODY_BYTES):
        self.token = token.encode("ascii")
        self.max_body_bytes = max_body_bytes
        self.writer = SpoolWriter(spool, name="received")
        _fsync_folder(events_dir(self.writer.spool))  # the new file's name survives a crash too
        # One thread writes, in the order requests finish: each request's lines are one write
        # (never interleaved with another's) and the event loop never waits on the disk.
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="receiver-write")
        self._check_threads = ThreadPoolExecutor(2, thread_name_prefix="receiver-check")

    def application(self) -> tornado.web.Application:
        routes = [(LINEAGE_PATH, _Receive, {"receiver": self, "lineage": True}),
                  (EVENTS_PATH, _Receive, {"receiver": self, "lineage": False})]
        return tornado.web.Application(routes, default_handler_class=_NotFound, log_function=_log_request)

    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header carries the token (compared in constant time)."""
        scheme, _, credentials = (header or "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode("utf-8", "replace"),
                                                                  self.token)

    async def check(self, body: bytes, compressed: bool, lineage: bool) -> list[bytes]:
        """The body's event lines, decompressed and checked off the event loop: a 4 MiB body takes
        0.3-1 s to check. One-event requests sent while 4 MiB ones flowed took 572 ms (median; p95
        1,209 ms) with the check on the loop, 58 ms (p95 140 ms) with it here."""
        def lines() -> list[bytes]:
            return checked_lines(gunzip(body, self.max_body_bytes) if compressed else body, lineage)

        return await asyncio.get_running_loop().run_in_executor(self._check_threads, lines)

    async def append(self, lines: list[bytes]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._write_thread, self.writer.append_lines, lines)

    def close(self) -> None:
        self._check_threads.shutdown(wait=True)
        self._write_thread.shutdown(wait=True)
        self.writer.close()


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's access log line, plus why a request was refused: the operator sees what the sender saw."""
    status = handler.get_status()
    refusal = getattr(handler, "refusal", None)
    (access_log.info if status < 400 else access_log.warning)(
        "%d %s %.1f ms%s", status, handler._request_summary(), 1000 * handler.request.request_time(),
        f": {refusal}" if refusal and status != 401 else "")


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _JsonErrors(tornado.web.RequestHandler):
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")

    def write_error(self, status_code: int, **kwargs) -> None:
        self.finish({"error": self._reason})

    def refuse(self, status: int, message: str) -> None:
        if status == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="taskdash"')
        self.set_status(status)
        self.refusal = message
        self.finish({"error": message})


class _NotFound(_JsonErrors):
    def prepare(self) -> None:
        self.refuse(404, f"no such path: POST OpenLineage events to {LINEAGE_PATH}, our event lines to {EVENTS_PATH}")


@tornado.web.stream_request_body
class _Receive(_JsonErrors):
    """POST of one OpenLineage event (`lineage`) or of our event lines: checked, appended, fsync'd, then 200."""

    SUPPORTED_METHODS = ("POST",)

    def initialize(self, receiver: Receiver, lineage: bool) -> None:
        self.receiver, self.lineage = receiver, lineage
        self.chunks: list[bytes] = []
        self.size = 0

    def prepare(self) -> None:
        # Nothing of the body is read before the sender is known and its size allowed.
        if not self.receiver.authorized(self.request.headers.get("Authorization")):
            return self.refuse(401, "a valid 'Authorization: Bearer <token>' header is required")
        encoding = self.request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            return self.refuse(415, f"unsupported Content-Encoding {encoding[:40]!r}: send gzip or nothing")
        length = self.request.headers.get("Content-Length")
        if length is not None and not re.fullmatch(r"[0-9]{1,20}", length.strip()):  # str.isdigit takes "²"
            return self.refuse(400, "Content-Length is not a number of bytes")
        if length is not None and int(length) > self.receiver.max_body_bytes:
            return self.refuse(413, f"the body is over {self.receiver.max_body_bytes:,} bytes")

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self.size += len(chunk)
        if self.size > self.receiver.max_body_bytes:  # a chunked body, which announced no length
            self.chunks = []
            return self.refuse(413, f"the body is over {self.receiver.max_body_bytes:,} bytes")
        self.chunks.append(chunk)

    async def post(self) -> None:
        if self._finished:
            return
        body, self.chunks = b"".join(self.chunks), []
        compressed = self.request.headers.get("Content-Encoding", "").strip().lower() == "gzip"
        try:
            lines = await self.receiver.check(body, compressed, self.lineage)
        except TooLarge as exc:
            return self.refuse(413, str(exc))
        except BadRequest as exc:
            return self.refuse(400, f"{exc}; nothing of this request was appended")
        try:
            await self.receiver.append(lines)
        except OSError as exc:
            return self.refuse(503, f"{exc.strerror}: nothing of this request was appended; send it again later")
        self.finish({"appended": len(lines)})


def tls_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """The server's TLS settings from a certificate chain (PEM) and its key, or None for plain HTTP."""
    if certfile is None:
        if keyfile is not None:
            raise ReceiverError("--keyfile needs --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ReceiverError(f"cannot use the certificate {certfile}" + (f" and key {keyfile}" if keyfile else "")
                            + f": {exc.strerror or exc}") from None
    return context


def serve(spool: str | Path, port: int, address: str, token: str, max_body_bytes: int = MAX_BODY_BYTES,
          tls: ssl.SSLContext | None = None) -> None:
    """Run the receiver until SIGINT or SIGTERM; print where it listens once it does."""
    sockets = tornado.netutil.bind_sockets(port, address)  # a port taken leaves nothing in the spool
    try:
        receiver = Receiver(spool, token, max_body_bytes)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise

    async def main() -> None:
        # The server's own limit is far above ours: our handler answers 413 itself (tornado's
        # would be a bare 400), reading nothing of a body it refuses.
        server = tornado.httpserver.HTTPServer(receiver.application(), max_body_size=1 << 62, ssl_options=tls,
                                               idle_connection_timeout=IDLE_SECONDS, body_timeout=IDLE_SECONDS)
        server.add_sockets(sockets)
        host, bound = sockets[0].getsockname()[:2]
        base = f"{'https' if tls else 'http'}://{f'[{host}]' if ':' in host else host}:{bound}"
        print(f"taskdash receive: {base}{LINEAGE_PATH} (OpenLineage) and {EVENTS_PATH} (event lines), "
              f"appending to {receiver.writer.events_path}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        await server.close_all_connections()

    try:
        asyncio.run(main())
    finally:
        receiver.close()
