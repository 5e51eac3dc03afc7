"""Log downloads: a run's whole stream, the bytes its process wrote, as a text file.

The bytes come from the spool file itself (the index holds lines as shown: CRLF made LF,
invalid UTF-8 replaced, over-long lines cut), a bounded chunk at a time, each read in a
worker thread, so a log of gigabytes never sits in memory whole and the event loop keeps serving.
"""

from __future__ import annotations

import asyncio

from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.web import HTTPError, authenticated

from . import queries
from .spool import STREAMS, SpoolError, validate_run_id
from .store import Store

#: Appended to the run detail route: /task-runs/<run_id>/logs/<stream>.log (see store.Links.download)
ROUTE_SUFFIX = r"/logs/(?P<stream>[a-z]+)\.log"


class LogDownloadHandler(AuthRequestHandler):
    """GET a run's stdout or stderr as an attachment.

    With access control on, it asks the server's auth provider for the user, as Panel's own
    pages do: without a valid login cookie a GET is sent to the login page, anything else is refused.
    """

    def initialize(self, store: Store) -> None:
        self.store = store

    @authenticated
    async def get(self, run_id: str, stream: str) -> None:
        try:
            validate_run_id(run_id)
        except SpoolError as exc:
            raise HTTPError(404, reason=str(exc)[:200]) from None
        if stream not in STREAMS:
            raise HTTPError(404, reason=f"unknown stream {stream!r}")
        store = self.store
        if queries.run(store, run_id) is None:
            raise HTTPError(404, reason=f"no run {run_id!r}")
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{run_id}-{stream}.log"')
        self.set_header("Cache-Control", "no-store")
        # How many lines of this stream the index held when the download began (what the pages show).
        self.set_header("X-Indexed-Lines", str(queries.log_line_counts(store, run_id)[stream]))
        chunks = store.log_chunks(run_id, stream)
        loop = asyncio.get_running_loop()
        try:
            while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
                self.write(chunk)
                await self.flush()
        except SpoolError as exc:
            raise HTTPError(404, reason=str(exc)[:200]) from None
