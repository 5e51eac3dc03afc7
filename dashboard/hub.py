"""The live feed: the ingestor publishes what changed, and every subscriber hears of it.

Plain publish/subscribe, on the publisher's thread: the hub knows no screen. Delivering onto
a browser session (its document, coalesced, paced by what the browser drew) is the UI's
job: `dashboard.components.live`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .changes import Change

__all__ = ["Change", "Hub", "Subscription"]  # Change: the message published (dashboard.changes)

log = logging.getLogger(__name__)


class Subscription:
    """One subscriber: its callback hears every change published until it is closed."""

    def __init__(self, hub: Hub, callback: Callable[[Change], None]):
        self._hub = hub
        self._callback = callback
        self.closed = False

    def offer(self, change: Change) -> None:
        if self.closed:
            return
        try:
            self._callback(change)
        except Exception:  # a broken subscriber must not stop the feed for the others
            log.exception("a subscriber of the hub failed")

    def close(self) -> None:
        """Hear nothing more and leave the hub."""
        self.closed = True
        self._hub._remove(self)


class Hub:
    """In-process publish/subscribe between the ingestor and whoever follows the index."""

    def __init__(self):
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []

    def subscribe(self, callback: Callable[[Change], None]) -> Subscription:
        """Call `callback` with every change published from now on (on the publisher's thread)."""
        subscription = Subscription(self, callback)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def publish(self, change: Change) -> None:
        """Offer a change to every subscriber (called from the ingest thread)."""
        if not change:
            return
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.offer(change)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
