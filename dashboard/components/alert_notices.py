"""The header's "Notify me" toggle: once on, this session shows the server's alerts as notices.

Only when an alert rule says `browser: true`. The session asks the store every second for the
alerts after the last it showed (the alerter keeps the latest few): no push, no state kept on
the server for the session, and an alert raised while the toggle is off is never shown later.
"""

from __future__ import annotations

import html

import panel as pn

from dashboard.components.timers import every
from dashboard.store import Store

#: How often an opted-in session asks for new alerts (seconds).
POLL_SECONDS = 1.0
OFF_LABEL, ON_LABEL = "Notify me", "Notifying ✓"
#: An alert's notice stays (0: no timer). Panel 1.9.4's notification script loops with an
#: undeclared `notification`, so a notice's timer or dismissal destroys the *latest* notice,
#: not its own: a timed notice shown after an alert would take the alert with it. So this
#: toggle shows no timed notice of its own; its label says it is on.
NOTICE_MS = 0


def alert_toggle(store: Store) -> pn.widgets.Toggle | None:
    """The toggle for the header, or None when no rule shows alerts on pages."""
    if store.browser_alerts_of is None:
        return None
    toggle = pn.widgets.Toggle(label=OFF_LABEL, value=False, width=130, color="light", variant="outline",
                               margin=(10, 10),
                               css_classes=["td-alert-toggle"])
    listening = {"seen": 0, "callback": None}

    def show_new() -> None:
        for number, alert in store.browser_alerts_of(listening["seen"]):
            listening["seen"] = number
            if pn.state.notifications is not None:  # notices show HTML: the text (task names, log lines) is escaped
                pn.state.notifications.error(html.escape(alert.get("text", "")), duration=NOTICE_MS)

    def switched(event) -> None:
        if event.new and listening["callback"] is None:
            latest = store.browser_alerts_of(None)
            listening["seen"] = latest[-1][0] if latest else 0
            listening["callback"] = every(POLL_SECONDS, show_new)
            toggle.label = ON_LABEL
        elif not event.new and listening["callback"] is not None:
            listening["callback"].stop()
            listening["callback"] = None
            toggle.label = OFF_LABEL

    toggle.param.watch(switched, "value")
    return toggle
