"""A view's heavy work off the server's event loop: computed on a worker thread, then applied on
the session's document.

Bokeh changes a document only under its lock, on the loop, and one loop serves every session:
work done there (laying out 1,500 tasks and building their plot took about 2 s) keeps every
other page, and /liveness, waiting. So a view computes what it will show on the worker and
only puts the result on its page on the loop (`Document.add_next_tick_callback` is Bokeh's one
thread-safe way in). The work starts when the page is built, not when a browser connects, so a
client that only pulls the document (no browser) gets the result too.

A browser that has pulled the document but not drawn it yet loses changes made meanwhile
(seen: a progress line hidden on the server stayed on screen; Panel itself waits for the
page's `document_ready` before it sends changes at once). Then the result is applied once the
page has drawn, or after UNDRAWN_WAIT seconds if it never says so (a client without a browser).
The page's state is looked at again every DRAWN_POLL seconds rather than told by Panel's
`onload`: a callback registered while Panel runs the page's load callbacks on its thread pool
can be left out of them, and the result then waited the whole UNDRAWN_WAIT. A page counts as
drawn once Panel has run those callbacks (`loaded`), not once it has heard the browser
(`connected`, set before them): a result is not applied on the loop while they change the page
on another thread.

Outside a server session (a notebook, a test building a view by itself) it all runs at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from typing import TypeVar

from panel.io.document import hold
from panel.io.state import set_curdoc, state

from dashboard import clock

log = logging.getLogger(__name__)

T = TypeVar("T")

#: One worker: heavy builds queue rather than share two cores, and HoloViews (whose option
#: store is process-wide) builds one plot at a time.
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskdash-offload")
#: The work submitted and not done yet (settle drops or waits for it).
_outstanding: set[Future] = set()
_outstanding_lock = threading.Lock()
#: Seconds a result waits for a page that has the document to say it drew it.
UNDRAWN_WAIT = 10.0
#: Seconds between two looks at whether such a page has drawn.
DRAWN_POLL = 0.05


def off_the_loop(compute: Callable[[], T], apply: Callable[[T], None],
                 failed: Callable[[BaseException], None] | None = None, after_first_paint: bool = False) -> bool:
    """`apply(compute())`, with `compute` on the worker when this runs in a server session.

    `compute` must not touch the page (it runs on another thread); `apply` runs on the session's
    loop, under its document's lock, if the session still exists. `failed(exc)` (on the loop) is
    told when `compute` raises. Returns whether the work went to the worker.

    `after_first_paint`: for a part below the fold. Its work starts once a browser has drawn the
    page, or after UNDRAWN_WAIT seconds: it takes no core from the first paint (a new lake-mode
    server's failure signatures made its first page 0.7 s later), and its result, put into a page
    no browser has drawn yet, would make that paint wait for it.
    """
    doc = state.curdoc
    if doc is None or doc.session_context is None:
        try:
            result = compute()
        except Exception as exc:
            if failed is None:
                raise
            failed(exc)
            return False
        apply(result)
        return False

    chosen = clock.current()  # the worker has no session: times are formatted in the session's clock

    def work() -> None:
        if doc.session_context.destroyed:  # closed before its turn came: nobody to show it to
            return
        try:
            with clock.fixed(chosen):
                result = compute()
        except Exception as exc:  # noqa: BLE001
            log.exception("a view's work off the event loop failed")
            if failed is None:
                return
            call = partial(failed, exc)
        else:
            call = partial(apply, result)
        try:
            doc.add_next_tick_callback(partial(_when_drawn, doc, call, after_first_paint))
        except Exception:  # noqa: BLE001  the session ended meanwhile: nothing to show it on
            pass

    if after_first_paint:
        doc.add_next_tick_callback(partial(_when_drawn, doc, partial(_submit, work), True))
    else:
        _submit(work)
    return True


def _submit(work: Callable[[], None]) -> None:
    future = _WORKER.submit(work)
    with _outstanding_lock:
        _outstanding.add(future)
    future.add_done_callback(_forget)


def _forget(future: Future) -> None:
    with _outstanding_lock:
        _outstanding.discard(future)


def settle(timeout: float = 30.0) -> None:
    """Drop the work not started yet and wait (at most `timeout` seconds) for the work under way:
    a server does this before it closes its index, which that work reads (a lake-mode server
    stopped during a failure grouping logged its "Connection already closed" as a traceback)."""
    with _outstanding_lock:
        outstanding = list(_outstanding)
    for future in outstanding:
        future.cancel()
    wait(outstanding, timeout)


def stream_off_the_loop(produce: Callable[[], Iterable[T]], apply: Callable[[T], None],
                        failed: Callable[[BaseException], None] | None = None) -> bool:
    """`apply` each item of `produce()` as it comes, with `produce` iterated on the worker when this
    runs in a server session (a search showing its first results while it reads on).

    As off_the_loop; the items are applied in order on the session's loop, and one that a newer
    item has overtaken before the loop came to it is skipped (a busy page shows the newest).
    `failed(exc)` (on the loop) is told when `produce` raises; then nothing is logged.
    """
    doc = state.curdoc
    if doc is None or doc.session_context is None:
        try:
            for item in produce():
                apply(item)
        except Exception as exc:
            if failed is None:
                raise
            failed(exc)
            return False
        return False
    newest = [0]

    def apply_if_newest(number: int, item) -> None:
        if number == newest[0]:
            apply(item)

    def publish(call: Callable[[], None]) -> bool:
        try:
            doc.add_next_tick_callback(partial(_when_drawn, doc, call))
            return True
        except Exception:  # noqa: BLE001  the session ended meanwhile: nothing to show it on
            return False

    chosen = clock.current()

    def work() -> None:
        try:
            with clock.fixed(chosen):
                for number, item in enumerate(produce(), start=1):
                    if doc.session_context.destroyed:
                        return
                    newest[0] = number
                    if not publish(partial(apply_if_newest, number, item)):
                        return
        except Exception as exc:  # noqa: BLE001
            if failed is None:
                log.exception("a view's work off the event loop failed")
                return
            newest[0] = -1  # what was published before the failure is not shown after it
            publish(partial(failed, exc))

    _submit(work)
    return True


def _when_drawn(doc, call: Callable[[], None], after_first_paint: bool = False,
                deadline: float | None = None) -> None:
    """On the loop: `call` now, unless a browser has pulled the page and not drawn it yet (or,
    `after_first_paint`, no browser has drawn it yet) and UNDRAWN_WAIT has not passed."""
    session = getattr(doc.session_context, "_session", None)
    undrawn = (session is not None and not state._loaded.get(doc)
               and (after_first_paint or session._subscribed_connections))
    deadline = time.monotonic() + UNDRAWN_WAIT if deadline is None else deadline
    if undrawn and time.monotonic() < deadline:
        try:
            doc.add_timeout_callback(partial(_when_drawn, doc, call, after_first_paint, deadline),
                                     int(DRAWN_POLL * 1000))
        except Exception:  # noqa: BLE001  the session ended
            pass
        return
    _on_the_loop(doc, call)


def _on_the_loop(doc, call: Callable[[], None]) -> None:
    # Held and frozen: the result's changes go out as one message, and Bokeh finds the document's
    # models once, not after each change (with a 1,500-task plot on the page, about 0.1 s each).
    with set_curdoc(doc), hold(doc), doc.models.freeze():
        try:
            call()
        except Exception as exc:  # noqa: BLE001
            state._handle_exception(exc)
