"""Alert deliveries on a thread of their own: a webhook POST or a command, retried with backoff.

Whoever hands an alert over (the alerter) never waits for it: a slow or failing receiver delays
only the alerts behind it, and after its retries it is logged, never raised.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import threading
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from .alert_rules import Command, Webhook

log = logging.getLogger(__name__)

#: At most this much of a failing command's stderr is logged.
STDERR_SHOWN = 500


class DeliveryError(RuntimeError):
    """One attempt at a delivery failed; the message says how."""


class Deliveries:
    """A queue of (action, alert) and the thread that works through it, in order."""

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._work, name="alert-deliveries", daemon=True)
        #: (action, alert, error or None) of every delivery finished, for the log and the tests
        self.done: list[tuple[Webhook | Command, dict, str | None]] = []

    def start(self) -> None:
        self._thread.start()

    def send(self, action: Webhook | Command, alert: dict) -> None:
        """Deliver `alert` by `action` soon; returns at once."""
        self._queue.put((action, alert))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the delivery under way (backoff waits end at once); what is queued is dropped."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        dropped = self._queue.qsize() - (1 if self._thread.is_alive() else 0)
        if dropped > 0:
            log.error("%d alert deliveries were still queued when the server stopped: not sent", dropped)

    def _work(self) -> None:
        while not self._stopping.is_set():
            item = self._queue.get()
            if item is None:
                return
            action, alert = item
            error = self._deliver(action, alert)
            self.done.append((action, alert, error))

    def _deliver(self, action: Webhook | Command, alert: dict) -> str | None:
        """Try, and retry with growing waits; the last error, or None once delivered."""
        body = json.dumps(alert, ensure_ascii=False).encode("utf-8")
        wait = action.backoff_seconds
        for attempt in range(action.retries + 1):
            try:
                (post if isinstance(action, Webhook) else run_command)(action, body)
                return None
            except (DeliveryError, OSError, ValueError) as exc:
                error = str(exc)
                if attempt == action.retries or self._stopping.wait(wait):
                    break
                wait *= 2
        log.error("alert %s (rule %s) not delivered to %s after %d attempt(s): %s", alert.get("kind"),
                  alert.get("rule"), describe(action), attempt + 1, error)
        return error


def post(webhook: Webhook, body: bytes) -> None:
    """POST `body` (JSON) to the webhook; DeliveryError unless it answers 2xx in time."""
    request = urllib.request.Request(webhook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "taskdash-alerts", **dict(webhook.headers)})
    try:
        with urllib.request.urlopen(request, timeout=webhook.timeout_seconds) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise DeliveryError(str(getattr(exc, "reason", exc))) from None


def run_command(command: Command, body: bytes) -> None:
    """Run the command (no shell) with `body` on its stdin; DeliveryError unless it exits 0 in time."""
    try:
        done = subprocess.run(list(command.argv), input=body, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=command.timeout_seconds, check=False)
    except subprocess.TimeoutExpired:
        raise DeliveryError(f"no end within {command.timeout_seconds:g} s (killed)") from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip()[-STDERR_SHOWN:]
        raise DeliveryError(f"exit status {done.returncode}" + (f": {said}" if said else ""))


def describe(action: Webhook | Command) -> str:
    """The action as the log names it: never a header (they may hold secrets)."""
    return f"webhook {urlsplit(action.url).netloc}" if isinstance(action, Webhook) else f"command {action.argv[0]}"
