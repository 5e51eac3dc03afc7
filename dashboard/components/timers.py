"""A page's periodic work, on its session's event loop.

On a served page, `every` is a chain of one-shot timeouts on the session's document (`Ticker`):
Bokeh cancels a pending timeout, and lets go of what it calls, the moment the session ends. A
Bokeh periodic callback, stopped, still holds its document (every model and view of the page)
until its current period ends: a minute for the runs page, so each plain GET of a page (a
session that never connects) stayed in memory that long. The ticks run on the event loop, where
the session's deliveries run too: Panel runs a plain periodic callback on one of its worker
threads and counts it in its process-wide busy state from two threads at once, which can fail
("Read-only parameter 'busy'").

In a notebook (no session), `every` is Panel's periodic callback on the kernel's event loop.
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn
from bokeh.document import Document
from panel.io.callbacks import PeriodicCallback
from panel.io.state import set_curdoc

#: The tickers armed now, on every session (a closed session's are stopped).
_ticking: set[Ticker] = set()


class Ticker:
    """`callback` every `seconds` on a session's document, until stopped or the session ends."""

    def __init__(self, doc: Document, seconds: float, callback: Callable[[], None]):
        self._doc, self._callback = doc, callback
        self._milliseconds = max(1, round(seconds * 1000))
        self._pending = None
        _ticking.add(self)
        doc.on_session_destroyed(self._session_ended)
        self._arm()

    def _arm(self) -> None:
        self._pending = self._doc.add_timeout_callback(self._tick, self._milliseconds)

    def _tick(self) -> None:
        self._arm()  # first: a callback that fails does not stop the ticks
        with set_curdoc(self._doc):
            self._callback()

    def _session_ended(self, _session_context) -> None:
        self._pending = None  # Bokeh has dropped it with the session's other callbacks
        _ticking.discard(self)

    def stop(self) -> None:
        _ticking.discard(self)
        pending, self._pending = self._pending, None
        if pending is not None:
            self._doc.remove_timeout_callback(pending)


def every(seconds: float, callback: Callable[[], None]) -> Ticker | PeriodicCallback:
    """Call `callback` every `seconds` while this session lives (or until stopped)."""
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        return Ticker(doc, seconds, callback)

    async def on_the_loop() -> None:
        callback()

    return pn.state.add_periodic_callback(on_the_loop, period=int(seconds * 1000))


def ticker_count() -> int:
    """How many tickers are armed, on all sessions (each ends with its session)."""
    return len(_ticking)
