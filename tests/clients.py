"""Bokeh client sessions standing in for browser tabs where hundreds are needed: each pulls a
page's document and keeps applying the server's changes, as a tab's page script does. They run
in this process (`LiveClient`), or in a process of their own (`ClientProcess`), as a browser's
tabs do: a server served from the test's process then shares its interpreter with none of them."""

from __future__ import annotations

import concurrent.futures
import importlib
import multiprocessing
import pkgutil
import threading
import traceback
from urllib.parse import parse_qsl

import panel as pn
from bokeh.client import pull_session
from bokeh.client.states import DISCONNECTED, ErrorReason
from serving import on_client_loop
from tornado.ioloop import IOLoop


def import_page_models() -> None:
    """A client session decodes the page's models by name: import every Panel model and the pages' own."""
    import dashboard.pages.run_detail
    import dashboard.pages.task_runs
    import dashboard.pages.tasks  # noqa: F401

    for module in pkgutil.iter_modules(pn.models.__path__):
        importlib.import_module(f"panel.models.{module.name}")


class LiveClient:
    """A Bokeh client session (pull_session) applying the server's changes on its own thread.

    Like a browser tab's page script, it tells the server (the connection indicator's
    `drawn`) when it has applied each live update, so the server paces it like a tab.
    """

    def __init__(self, url: str):
        self.loop = IOLoop()
        url, _, query = url.partition("?")  # Bokeh's client takes the page's arguments apart
        self.session = pull_session(url=url, io_loop=self.loop, arguments=dict(parse_qsl(query)) or None)
        self._read_messages_in_a_loop()
        receipt = next(m for m in self.session.document.models if type(m).__name__.startswith("ConnectionIndicator"))
        receipt.on_change("delivered", lambda _attr, _old, new: setattr(receipt, "drawn", new))
        # Bokeh's own loop that reads the server's messages ("intended to facilitate testing").
        self.thread = threading.Thread(target=self.session._loop_until_closed, daemon=True)
        self.thread.start()

    def _read_messages_in_a_loop(self) -> None:
        """Bokeh's client awaits its next message one coroutine deeper per message, so a session
        that hears a few hundred dies of RecursionError (and then silently reads nothing more);
        a tab lives for hours. Read them in a loop instead."""
        connection = self.session._connection

        async def handle_messages() -> None:
            while (message := await connection._pop_message()) is not None:
                if message.msgtype == "PATCH-DOC":
                    self.session._handle_patch(message)
            await connection._transition_to_disconnected(DISCONNECTED(ErrorReason.NETWORK_ERROR, None, "closed"))

        connection._handle_messages = handle_messages

    def read(self, look):
        """`look(document)`, run on the session's loop between two changes from the server."""
        return on_client_loop(self.loop, lambda: look(self.session.document))

    def close(self) -> None:
        self.loop.add_callback(self.session.close)
        self.thread.join(30)
        if not self.thread.is_alive():
            self.loop.close(all_fds=True)


class ClientProcess:
    """LiveClients opened and closed, a batch at a time, by a process of their own.

    With the server served in the test's process, clients there share its interpreter: each
    session's document was decoded and patched under the same lock the server built it with
    (100 sessions cycled: about 1.2 s a session there, 0.9 s with the clients apart).
    """

    def __init__(self, threads: int = 8):
        context = multiprocessing.get_context("spawn")  # not a fork of a process running a server
        self._orders, theirs = context.Pipe()
        self.process = context.Process(target=_take_orders, args=(theirs, threads), daemon=True)
        self.process.start()
        theirs.close()

    def open(self, url: str, count: int) -> None:
        """Open `count` sessions of `url` at once; return when all are open."""
        self._ask(("open", url, count))

    def close_all(self) -> None:
        """Close every session open; return when all are closed."""
        self._ask(("close",))

    def _ask(self, order: tuple, timeout: float = 300) -> None:
        self._orders.send(order)
        if not self._orders.poll(timeout):
            raise AssertionError(f"the client process did not answer {order} within {timeout} s")
        failed = self._orders.recv()
        if failed:
            raise AssertionError(f"the client process failed at {order}:\n{failed}")

    def stop(self) -> None:
        try:
            self._orders.send(("stop",))
        except OSError:  # it is gone already
            pass
        self.process.join(60)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._orders.close()

    def __enter__(self) -> ClientProcess:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


def _take_orders(orders, threads: int) -> None:
    """The client process: open and close sessions as told; answer "" when done, else the traceback."""
    import_page_models()
    opened: list[LiveClient] = []
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        while (order := orders.recv())[0] != "stop":
            try:
                if order[0] == "open":
                    _, url, count = order
                    opened += pool.map(lambda _: LiveClient(url), range(count))
                else:
                    for client in opened:
                        client.close()
                    opened.clear()
                orders.send("")
            except Exception:  # noqa: BLE001  (said to the test, which fails on it)
                orders.send(traceback.format_exc())
    for client in opened:
        client.close()
