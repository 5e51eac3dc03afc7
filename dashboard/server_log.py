"""What the server logs: a browser tab closing or reconnecting is ordinary, not a warning.

Panel and Bokeh log a write to a websocket that closed meanwhile as a warning ("Failed
sending message as connection was closed"), and Panel can leave such a write's future
unawaited when its session ends, which asyncio reports as an error with a traceback
("Task exception was never retrieved ... WebSocketClosedError"). And when Bokeh's keep-alive
ping meets a socket the browser has just closed, Bokeh detaches the socket's session before
Tornado calls its close handler, whose assertion that the session is there then fails
("Uncaught exception GET /task-runs/ws ... AssertionError", Bokeh 3.9). An operator reading the
log would think the server broken. These records are lowered to DEBUG; anything else,
including any other exception, is logged as before.
"""

from __future__ import annotations

import logging
import os
import traceback

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

CLOSED_SOCKET_MESSAGE = "Failed sending message as connection was closed"
_LOGGERS = ("asyncio", "panel.io.document", "bokeh.server.views.ws", "tornado.application")


class ClosedConnectionFilter(logging.Filter):
    """Lowers the records about a browser's connection having closed to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        closed = isinstance(error, (WebSocketClosedError, StreamClosedError)) or _session_already_lost(error) or (
            record.levelno == logging.WARNING and record.getMessage().startswith(CLOSED_SOCKET_MESSAGE))
        if not closed:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _session_already_lost(error: BaseException | None) -> bool:
    """Bokeh's assertion that a closing socket still has its session, which its keep-alive ping
    detached when it found the socket closed first."""
    if not isinstance(error, AssertionError) or error.__traceback__ is None:
        return False
    last = traceback.extract_tb(error.__traceback__)[-1]
    return last.name == "session" and last.filename.replace(os.sep, "/").endswith("bokeh/server/connection.py")


_FILTER = ClosedConnectionFilter()


def quiet_closed_connections() -> None:
    """Install the filter on the loggers that report closed connections (once per process)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
