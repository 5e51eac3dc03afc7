"""A page's periodic work, on its session's event loop.

Panel runs a plain periodic callback on one of its worker threads (`threads:` in
panel_serve.yaml) and counts it in its process-wide busy state from two threads at once,
which can fail ("Read-only parameter 'busy'"). A coroutine runs on the event loop, where
the session's deliveries run too.
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn
from panel.io.callbacks import PeriodicCallback


def every(seconds: float, callback: Callable[[], None]) -> PeriodicCallback:
    """Call `callback` every `seconds` while this session lives."""

    async def on_the_loop() -> None:
        callback()

    periodic = pn.state.add_periodic_callback(on_the_loop, period=int(seconds * 1000))
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        # Bokeh holds a stopped periodic callback until its current period ends: let go of the
        # view when the session ends, or a closed session's page stays in memory that long.
        pn.state.on_session_destroyed(lambda _context: periodic.param.update(callback=_nothing))
    return periodic


async def _nothing() -> None:
    pass
