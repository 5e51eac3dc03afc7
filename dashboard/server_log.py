"""What the server logs: a browser tab closing or reconnecting is ordinary, not a warning.

Panel and Bokeh log a write to a websocket that closed meanwhile as a warning ("Failed
sending message as connection was closed"), and Panel can leave such a write's future
unawaited when its session ends, which asyncio reports as an error with a traceback
("Task exception was never retrieved ... WebSocketClosedError"). An operator reading the
log would think the server broken. These records are lowered to DEBUG; anything else,
including any other exception, is logged as before.
"""

from __future__ import annotations

import logging

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

CLOSED_SOCKET_MESSAGE = "Failed sending message as connection was closed"
_LOGGERS = ("asyncio", "panel.io.document", "bokeh.server.views.ws")


class ClosedConnectionFilter(logging.Filter):
    """Lowers the records about a browser's connection having closed to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        closed = isinstance(error, (WebSocketClosedError, StreamClosedError)) or (
            record.levelno == logging.WARNING and record.getMessage().startswith(CLOSED_SOCKET_MESSAGE))
        if not closed:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_FILTER = ClosedConnectionFilter()


def quiet_closed_connections() -> None:
    """Install the filter on the loggers that report closed connections (once per process)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
