"""Live updates on a Panel session: the hub's changes delivered onto the session's document.

Deliveries run on the session's document (Bokeh's thread-safe `add_next_tick_callback`), are
coalesced so a view hears at most a few times a second however fast the spool changes, and
stop when the session closes. In a Jupyter kernel they run on the kernel's event loop, so they
never change a component while a cell is displaying it; elsewhere at once, on the ingest thread.

A browser session with a receipt on its page (the connection indicator) is also paced by
what it has drawn: the next delivery waits until the browser says it drew the last one, and
changes merge meanwhile. A tab slower than the spool then shows the newest state a little
less often, instead of falling further behind with every message queued for it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

from panel.io.document import hold
from panel.io.state import set_curdoc, state

from dashboard.changes import Change
from dashboard.hub import Subscription

#: A browser that has not said it drew the last delivery within this long gets the next anyway
#: (a client without the receipt's script, or a receipt lost in a reconnect).
RECEIPT_TIMEOUT = 10.0

#: document -> its Pace, for the sessions whose page has a receipt
_paces: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Pace:
    """One browser session's deliveries, one drawn at a time.

    `receipt` is a component on the session's page with two counters: `delivered`, which the
    server raises with each delivery that changed something, and `drawn`, which the browser
    sets to it once it has drawn that delivery. Deliveries run on the session's event loop;
    the receipt may arrive on one of Panel's worker threads.
    """

    def __init__(self, receipt):
        self._receipt = receipt
        self._lock = threading.Lock()
        self._sent_at: float | None = None  # a delivery is not drawn yet
        self._held_back: list[Delivery] = []
        receipt.param.watch(self._drawn, "drawn")

    def hold_back(self, delivery: Delivery) -> float:
        """Seconds until `delivery` may deliver; if it must wait for the browser, it is woken
        as soon as the browser has drawn the last delivery (or when the receipt is overdue)."""
        with self._lock:
            wait = 0.0 if self._sent_at is None else self._sent_at + RECEIPT_TIMEOUT - time.monotonic()
            if wait > 0 and delivery not in self._held_back:
                self._held_back.append(delivery)
            return wait

    def sent(self) -> None:
        with self._lock:
            self._sent_at = time.monotonic()
            self._receipt.delivered += 1

    def _drawn(self, event) -> None:
        with self._lock:
            if event.new < self._receipt.delivered:  # the receipt of an earlier delivery
                return
            self._sent_at = None
            held_back, self._held_back = self._held_back, []
        for delivery in held_back:
            delivery.wake_after_receipt()


class Feed(Protocol):
    """What changes come from: the Store (or its hub)."""

    def subscribe(self, callback: Callable[[Change], None]) -> Subscription: ...


class Follower(Protocol):
    def changed(self, change: Change) -> None: ...


View = TypeVar("View", bound=Follower)


class Delivery:
    """One view's pending changes, delivered coalesced on its session, or its event loop (if any).

    Without a callback yet, changes gather until `deliver_to` names one: a page subscribes
    before its first query, so nothing published while it is built is lost.
    """

    def __init__(self, callback: Callable[[Change], None] | None, doc=None, min_interval: float = 0.25,
                 loop: asyncio.AbstractEventLoop | None = None):
        self._callback = callback
        self._doc = doc
        self._loop = loop
        #: The least time between two deliveries on a session (seconds).
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._pending: Change | None = None
        self._last_delivery = 0.0
        self._wakeups = itertools.count(1)  # a scheduled delivery runs only if no later wake-up took over
        self._latest_wakeup = 0
        self.subscription: Subscription | None = None  # set by `subscribe`: the hub's end
        self.closed = False

    def offer(self, change: Change) -> None:
        """Queue a change (from the hub); schedule a delivery unless one is already on its way."""
        with self._lock:
            if self.closed:
                return
            if self._pending is not None:
                self._pending.merge(change)
                return
            self._pending = Change()
            self._pending.merge(change)
            if self._callback is None:  # gathered until deliver_to
                return
        self._schedule()

    def deliver_to(self, callback: Callable[[Change], None]) -> None:
        """Start delivering to `callback`, beginning with what gathered since subscribing."""
        with self._lock:
            self._callback = callback
            if self._pending is None or self.closed:
                return
        self._schedule()

    def _schedule(self) -> None:
        """Deliver the pending change on the session, on the event loop, or here and now."""
        if self._doc is not None:
            try:
                self._wake()
                return
            except Exception:  # noqa: BLE001
                # The session ended: Bokeh can destroy its document before our
                # on_session_destroyed callback runs, and a destroyed document raises
                # whatever its torn-down parts raise. The ingest thread must not see it.
                self.close()
                return
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop was closed
                self.close()
            return
        self._deliver()

    def _wake(self) -> None:
        """Try to deliver on the session's next tick (thread-safe)."""
        wakeup = self._latest_wakeup = next(self._wakeups)
        self._doc.add_next_tick_callback(partial(self._deliver_on_doc, wakeup))

    def wake_after_receipt(self) -> None:
        """The browser drew the last delivery: deliver what is pending (the session may have ended)."""
        if not self.closed:
            self._schedule()

    def _deliver_on_doc(self, wakeup: int) -> None:
        if wakeup != self._latest_wakeup:  # a later wake-up took over
            return
        pace = _paces.get(self._doc)
        too_soon = self._last_delivery + self.min_interval - time.monotonic()
        not_drawn = pace.hold_back(self) if pace is not None else 0.0
        if too_soon > 0 or not_drawn > 0:  # let more changes gather
            self._doc.add_timeout_callback(partial(self._deliver_on_doc, wakeup),
                                           int(max(too_soon, not_drawn) * 1000) + 1)
            return
        # Held: everything one delivery changes goes to the browser as one message.
        with set_curdoc(self._doc), hold(self._doc):
            changes_before = _held_changes(self._doc)
            self._deliver()
            if pace is not None and _held_changes(self._doc) != changes_before:
                pace.sent()

    def _deliver(self) -> None:
        with self._lock:
            if self.closed or self._pending is None or self._callback is None:
                return
            change, self._pending = self._pending, None
            self._last_delivery = time.monotonic()
        try:
            self._callback(change)
        except Exception as exc:  # a broken page must not stop the feed for the others
            state._handle_exception(exc)

    def close(self) -> None:
        """Stop deliveries and leave the hub."""
        with self._lock:
            self.closed = True
            self._pending = None
        if self.subscription is not None:
            self.subscription.close()


def _held_changes(doc) -> int:
    """How many changes the held document collected so far (-1 when Bokeh does not say)."""
    held = getattr(doc.callbacks, "_held_events", None)
    return -1 if held is None else len(held)


def subscribe(feed: Feed, callback: Callable[[Change], None] | None = None, min_interval: float = 0.25) -> Delivery:
    """Hear the feed's changes where this code runs: inside a Panel session on its document
    (ending with it), in a Jupyter kernel on its event loop, elsewhere at once. Without a
    callback, changes gather until `Delivery.deliver_to` names one."""
    doc = state.curdoc if state.curdoc is not None and state.curdoc.session_context else None
    loop = kernel_loop() if doc is None else None
    delivery = Delivery(callback, doc, min_interval, loop)
    delivery.subscription = feed.subscribe(delivery.offer)
    if doc is not None:
        doc.on_session_destroyed(lambda _context: delivery.close())
    return delivery


def follow(feed: Feed, build_view: Callable[[], View], min_interval: float = 0.25) -> tuple[View, Delivery]:
    """`build_view()`, and deliver changes to its `changed` from before it first queries the
    index: a change published while it is built reaches it too."""
    delivery = subscribe(feed, min_interval=min_interval)
    try:
        view = build_view()
    except BaseException:
        delivery.close()
        raise
    delivery.deliver_to(view.changed)
    return view, delivery


def pace_session(receipt) -> None:
    """Pace this Panel session's deliveries by what `receipt` says its browser has drawn (see Pace)."""
    doc = state.curdoc
    if doc is not None and doc.session_context is not None:
        _paces[doc] = Pace(receipt)
        doc.on_session_destroyed(lambda _context: _paces.pop(doc, None))


def paced_session_count() -> int:
    """How many sessions are paced by their receipt now."""
    return len(_paces)


def session_paces() -> list[Pace]:
    """The paces of the sessions paced now, the newest last."""
    return list(_paces.values())


def kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of the Jupyter kernel this thread runs cells for, or None elsewhere."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
