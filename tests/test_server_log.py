"""A browser tab closing is not a warning in the server's log; other problems still are."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest
from bokeh.server.connection import ServerConnection
from tornado.websocket import WebSocketClosedError

from dashboard.server_log import CLOSED_SOCKET_MESSAGE, quiet_closed_connections


@pytest.fixture
def records():
    """Every record the concerned loggers pass on, with the filter installed."""
    quiet_closed_connections()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record)

    handler = Keep(level=logging.INFO)
    loggers = [logging.getLogger(name)
               for name in ("asyncio", "panel.io.document", "bokeh.server.views.ws", "tornado.application")]
    for logger in loggers:
        logger.addHandler(handler)
    yield seen
    for logger in loggers:
        logger.removeHandler(handler)


def test_an_unawaited_write_to_a_closed_websocket_is_not_logged(records):
    async def write():
        raise WebSocketClosedError()

    async def leave_it_unawaited():
        task = asyncio.ensure_future(write())
        await asyncio.sleep(0)
        del task

    # On a thread of its own: earlier tests in the same process (Playwright's sync API) may
    # have left an event loop running on this one, where asyncio.run refuses to start.
    runner = threading.Thread(target=asyncio.run, args=(leave_it_unawaited(),))
    runner.start()
    runner.join()
    gc.collect()  # asyncio reports "Task exception was never retrieved" when the task is freed
    assert [r for r in records if r.levelno > logging.INFO] == []


def test_a_send_to_a_closed_connection_is_not_a_warning(records):
    logging.getLogger("bokeh.server.views.ws").warning(CLOSED_SOCKET_MESSAGE)
    logging.getLogger("panel.io.document").warning(CLOSED_SOCKET_MESSAGE)
    assert records == []


def test_a_socket_whose_session_the_keep_alive_ping_detached_is_not_an_error(records):
    # Bokeh's keep-alive ping found the socket closed and detached its session; Tornado then
    # calls the socket's close handler, which asks the connection for that session.
    connection = ServerConnection.__new__(ServerConnection)
    connection._session = None
    try:
        connection.session.notify_connection_lost()
    except AssertionError:
        logging.getLogger("tornado.application").error("Uncaught exception GET /task-runs/ws (127.0.0.1)",
                                                       exc_info=True)
    assert records == []


def test_other_problems_are_still_logged(records):
    logging.getLogger("panel.io.document").warning("Failed sending message due to following error: boom")
    try:
        raise ValueError("a real bug")
    except ValueError:
        logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=True)
    try:
        assert 1 + 1 == 3, "a real assertion of ours"
    except AssertionError:
        logging.getLogger("tornado.application").error("Uncaught exception GET /task-runs (127.0.0.1)",
                                                       exc_info=True)
    assert [r.levelname for r in records] == ["WARNING", "ERROR", "ERROR"]
