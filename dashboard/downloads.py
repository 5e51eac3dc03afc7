"""Log downloads: a run's whole stream streamed from the index as a text file.

The text goes out a bounded range of lines at a time, each read in a worker thread, so a
log of millions of lines never sits in memory whole and the event loop keeps serving.
"""

from __future__ import annotations

import asyncio

from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.web import HTTPError, authenticated

from . import queries
from .spool import STREAMS, SpoolError, validate_run_id

#: Appended to the run detail route: /task-runs/<run_id>/logs/<stream>.log
ROUTE_SUFFIX = r"/logs/(?P<stream>[a-z]+)\.log"


def download_url(detail_url: str, stream: str) -> str:
    """The download link of a stream, next to the run's detail page URL."""
    return f"{detail_url}/logs/{stream}.log"


class LogDownloadHandler(AuthRequestHandler):
    """GET a run's stdout or stderr as an attachment.

    With access control on, it asks the server's auth provider for the user, as Panel's own
    pages do: without a valid login cookie a GET is sent to the login page, anything else is refused.
    """

    def initialize(self, services) -> None:
        self.services = services

    @authenticated
    async def get(self, run_id: str, stream: str) -> None:
        try:
            validate_run_id(run_id)
        except SpoolError as exc:
            raise HTTPError(404, reason=str(exc)[:200]) from None
        if stream not in STREAMS:
            raise HTTPError(404, reason=f"unknown stream {stream!r}")
        services = self.services()
        if queries.run(services.index, run_id) is None:
            raise HTTPError(404, reason=f"no run {run_id!r}")
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{run_id}-{stream}.log"')
        self.set_header("Cache-Control", "no-store")
        chunks = queries.log_text_chunks(services.index, run_id, stream)
        loop = asyncio.get_running_loop()
        while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
            self.write(chunk.encode("utf-8"))
            await self.flush()
