"""The alerter: run changes heard from the hub become incidents, and each incident is told once.

- A run that newly matches a rule opens an **incident**, and the incident is alerted once.
- A **blocked** run belongs to its root cause's incident (`dashboard.blocking`): the root's
  alert says how many runs it blocks, and runs blocked later join it silently.
- Failures with the same **signature** (`dashboard.failures`) within the repeat window are
  counted, not sent; when the window closes a summary says "repeated N times".
- A **late** rule (`late: true`) is about runs under way that have run longer than 9 in 10 of
  their task's recent runs (`dashboard.estimates`). A run becomes late with no change to hear
  of: the alerter looks every LATE_CHECK_SECONDS, and alerts each late run once.
- What was sent is kept in a small state file beside the index (never in the index: the ingest
  side alone writes it), so a restarted server neither re-sends nor forgets: runs whose latest
  status is older than the alerter's last known point are not alerted again.

The hub calls in on the ingest thread; the alerter only queues the change there. Its own thread
reads the index and decides, and deliveries (`dashboard.alert_delivery`) have another.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .alert_delivery import Deliveries
from .alert_rules import AlertSettings, Rule
from .blocking import cycles_of
from .changes import Change
from .emphasis import Emphasis
from .estimates import running_estimates
from .failures import signatures_of
from .formatting import human_duration, iso_utc, plain, utcnow

log = logging.getLogger(__name__)

#: Incidents older than this (and the window) are forgotten: a run is not reported twice that late.
REMEMBERED = dt.timedelta(days=2)
#: The latest alerts kept for open pages to show (each page asks for those after the last it saw).
BROWSER_ALERTS_KEPT = 50
#: How often running runs are checked for lateness, when a rule asks for late runs.
LATE_CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class RunFacts:
    """What the alerter knows of a changed run when it decides."""

    run_id: str
    task: str
    group: str | None
    status: str
    updated: dt.datetime
    trigger_time: dt.datetime | None = None
    finished: dt.datetime | None = None
    message: str | None = None
    blocked_by: str | None = None  # the root cause's run id when the run is blocked
    blocked_by_task: str | None = None
    blocks: int = 0
    error_line: str | None = None
    signature: str | None = None
    late: bool = False  # found running late (its `updated` is then when that was noticed)
    elapsed: float | None = None  # seconds it has run, when late


class Incidents:
    """The once-per-incident rules over runs as they change, and the state that outlives a restart.

    Pure logic over RunFacts (no index, no threads): `decide` says which alerts a changed run
    gives, `close_windows` which summaries of repeats are due.
    """

    def __init__(self, settings: AlertSettings, state: dict | None = None, now: dt.datetime | None = None,
                 run_link: str = "/task-runs/{run_id}"):
        self.rules = settings.rules
        self.window = dt.timedelta(seconds=settings.repeat_window_seconds)
        self.run_link = run_link
        state = state or {}
        #: runs whose latest status is not after this were seen by an earlier alerter (or before
        #: the first start): they are never alerted
        self.start_point = _time(state.get("point")) or now or utcnow()
        self.point = self.start_point
        #: rule -> root run id -> when its incident opened
        self.incidents: dict[str, dict[str, str]] = {rule.name: dict(state.get("incidents", {}).get(rule.name, {}))
                                                     for rule in self.rules}
        #: rule -> signature -> {"since", "run_id" (the one alerted), "repeated", "run_ids"}
        self.windows: dict[str, dict[str, dict]] = {rule.name: dict(state.get("windows", {}).get(rule.name, {}))
                                                    for rule in self.rules}

    def decide(self, run: RunFacts, now: dt.datetime) -> list[tuple[Rule, dict]]:
        """The alerts `run`, as it now stands, gives (most often none)."""
        if not run.late:  # a status change: told once, and never one an earlier alerter saw
            if run.updated <= self.start_point:
                return []
            self.point = max(self.point, run.updated)
        alerts = []
        for rule in self.rules:
            opened = self.incidents[rule.name]
            incident = run.blocked_by or run.run_id
            if incident in opened or not rule.matches(run.task, run.group, run.status, run.late):
                continue  # told already (a blocked run joins its root's incident silently), or not this rule's
            if run.blocked_by and rule.root_cause_only:
                continue
            opened[incident] = iso_utc(now)
            window = self.windows[rule.name].get(run.signature) if run.signature else None
            if window and now - _time(window["since"]) < self.window:
                window["repeated"] += 1
                window["run_ids"] = (window["run_ids"] + [run.run_id])[-20:]
                continue
            if run.signature:
                self.windows[rule.name][run.signature] = {"since": iso_utc(now), "run_id": run.run_id,
                                                          "repeated": 0, "run_ids": []}
            alerts.append((rule, self.alert(rule, run)))
        return alerts

    def alert(self, rule: Rule, run: RunFacts) -> dict:
        """The JSON an action receives for an incident."""
        what = f"{run.task} {run.status}"
        if run.late:
            what += f" late: {human_duration(run.elapsed)} so far, longer than 9 in 10 of its recent runs"
        if run.blocked_by:
            what += f" (blocked: upstream {run.blocked_by_task} failed)"
        text = what + (f": {run.error_line}" if run.error_line else "") + \
            (f" · blocks {run.blocks}" if run.blocks else "")
        return {"kind": "alert", "rule": rule.name, "text": text, "run_id": run.run_id, "task": run.task,
                "group": run.group, "status": run.status, "trigger_time": iso_utc(run.trigger_time),
                "finished": iso_utc(run.finished), "message": run.message, "error_line": run.error_line,
                "signature": run.signature, "blocks": run.blocks, "root_cause": run.blocked_by is None,
                "late": run.late, "elapsed_seconds": run.elapsed,
                "root_cause_run_id": run.blocked_by or run.run_id,
                "link": self.run_link.format(run_id=run.blocked_by or run.run_id)}

    def close_windows(self, now: dt.datetime) -> list[tuple[Rule, dict]]:
        """Summaries of the repeat windows that closed: one for each that counted repeats."""
        summaries = []
        for rule in self.rules:
            for signature, window in list(self.windows[rule.name].items()):
                if now - _time(window["since"]) < self.window:
                    continue
                del self.windows[rule.name][signature]
                if window["repeated"]:
                    n = window["repeated"]
                    summaries.append((rule, {
                        "kind": "repeated", "rule": rule.name, "signature": signature, "repeated": n,
                        "text": f"repeated {n} time{'s' * (n != 1)} within {self.window.total_seconds():g} s "
                                f"after the alert for run {window['run_id']}: {signature}",
                        "first_run_id": window["run_id"], "run_ids": window["run_ids"], "since": window["since"],
                        "window_seconds": self.window.total_seconds()}))
        return summaries

    def next_window_end(self) -> dt.datetime | None:
        ends = [_time(w["since"]) + self.window for windows in self.windows.values() for w in windows.values()]
        return min(ends, default=None)

    def state(self, now: dt.datetime) -> dict:
        """What a restarted alerter needs (incidents too old to matter are left out)."""
        oldest = now - max(REMEMBERED, self.window)
        return {"version": 1, "point": iso_utc(self.point),
                "incidents": {rule: {run_id: at for run_id, at in opened.items() if _time(at) >= oldest}
                              for rule, opened in self.incidents.items()},
                "windows": self.windows}


class Alerter:
    """Follows the hub in the server process and sends each incident's alert by its rule's actions."""

    def __init__(self, index, hub, settings: AlertSettings, state_path: Path, emphasis: Emphasis = Emphasis(),
                 run_link: str = "/task-runs/{run_id}"):
        self.index, self.hub, self.settings = index, hub, settings
        self.state_path = Path(state_path)
        self.emphasis = emphasis
        self.incidents = Incidents(settings, _read_state(self.state_path), run_link=run_link)
        #: the statuses a change of a run matters in (late rules look on a timer instead)
        self.statuses = sorted({status for rule in settings.rules if not rule.late for status in rule.statuses})
        self.late_rules = any(rule.late for rule in settings.rules)
        self._next_late_check = dt.datetime.min
        self.deliveries = Deliveries()
        self._changes: queue.Queue[Change | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="alerter", daemon=True)
        self._subscription = None
        #: whether any rule shows its alerts on open pages
        self.for_browser = any(rule.browser for rule in settings.rules)
        self._browser: deque[tuple[int, dict]] = deque(maxlen=BROWSER_ALERTS_KEPT)
        self._sequence = 0

    def browser_alerts(self, after: int | None = None) -> list[tuple[int, dict]]:
        """(number, alert) of the alerts for open pages numbered after `after`; with None, only
        the latest (a page that starts listening learns where to start)."""
        kept = list(self._browser)
        if after is None:
            return kept[-1:]
        return [(n, alert) for n, alert in kept if n > after]

    def start(self) -> None:
        """Hear the hub from now on (before the ingestor starts: nothing is missed)."""
        self._save(utcnow())  # the first start's point: history already in the spool is not alerted
        self._subscription = self.hub.subscribe(self._changes.put)  # never blocks the ingest thread
        self.deliveries.start()
        self._thread.start()

    def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        self._changes.put(None)
        if self._thread.is_alive():
            self._thread.join(10)
        self.deliveries.stop()

    def _work(self) -> None:
        while True:
            end = self.incidents.next_window_end()
            timeout = None if end is None else max(0.0, (end - utcnow()).total_seconds()) + 0.01
            if self.late_rules:
                timeout = LATE_CHECK_SECONDS if timeout is None else min(timeout, LATE_CHECK_SECONDS)
            try:
                heard = self._changes.get(timeout=timeout)
            except queue.Empty:
                heard = Change()
            if heard is None:
                return
            change = Change()  # merged into a change of its own: the hub's are shared with the pages
            change.merge(heard)
            while not self._changes.empty():  # what arrived meanwhile is decided together
                more = self._changes.get_nowait()
                if more is None:
                    self._changes.put(None)
                    break
                change.merge(more)
            try:
                self._handle(change)
            except Exception:  # a failed step must not end the alerter: the next change tries again
                log.exception("the alerter failed to handle a change")

    def _handle(self, change: Change) -> None:
        now = utcnow()
        sent = []
        if change.many_runs or change.runs:
            for run in self.changed_runs(change):
                sent += self.incidents.decide(run, now)
        if self.late_rules and now >= self._next_late_check:
            self._next_late_check = now + dt.timedelta(seconds=LATE_CHECK_SECONDS)
            for run in self.late_runs(now):
                sent += self.incidents.decide(run, now)
        sent += self.incidents.close_windows(now)
        for rule, alert in sent:
            for action in rule.actions:
                self.deliveries.send(action, alert)
            if rule.browser:
                self._sequence += 1
                self._browser.append((self._sequence, alert))
        if sent or change:
            self._save(now)

    def changed_runs(self, change: Change) -> list[RunFacts]:
        """The changed runs some rule could be about, as the index has them now."""
        if not self.statuses:
            return []
        marks = ", ".join("?" * len(self.statuses))
        if change.many_runs:
            where, params = "updated > ?", [self.incidents.start_point]
        else:
            ids = list(change.runs)
            where, params = f"run_id IN ({', '.join('?' * len(ids))})", ids
        frame = self.index.query(f"""
            SELECT run_id, task, grp, status, updated, trigger_time, started, finished, message, adhoc FROM runs
            WHERE {where} AND status IN ({marks}) AND updated > ? ORDER BY updated, run_id""",
                                 [*params, *self.statuses, self.incidents.start_point])
        if frame.empty:
            return []
        cycles = cycles_of(self.index, frame)
        runs = []
        for row in frame.itertuples(index=False):
            cycle = cycles.get(pd.Timestamp(row.trigger_time)) if pd.notna(row.trigger_time) else None
            if cycle is not None and getattr(cycle.runs.get(row.task), "run_id", None) != row.run_id:
                cycle = None  # an earlier run of the task in that cycle (a retry followed): not part of it
            blocked = cycle.blocked(row.task) if cycle else None
            runs.append(RunFacts(row.run_id, row.task, plain(row.grp), row.status, row.updated.to_pydatetime(),
                                 _pydatetime(row.trigger_time), _pydatetime(row.finished), plain(row.message),
                                 blocked.roots[0].run_id if blocked else None,
                                 blocked.roots[0].task if blocked else None,
                                 0 if blocked or cycle is None else cycle.blocks(row.task)))
        roots = [run.run_id for run in runs if run.blocked_by is None]
        signed = signatures_of(self.index, roots, self.emphasis)
        runs = [RunFacts(**{**run.__dict__, "error_line": signed[run.run_id][0], "signature": signed[run.run_id][1]})
                if run.run_id in signed else run for run in runs]
        # In the order they changed (so alerts go out in that order), a root before the runs it
        # blocks at the same time.
        return sorted(runs, key=lambda run: (run.updated, run.blocked_by is not None))

    def late_runs(self, now: dt.datetime) -> list[RunFacts]:
        """The runs under way that run late now, as `dashboard.estimates` judges them."""
        estimates = running_estimates(self.index, now)
        late = estimates[estimates["late"].astype(bool)]
        if late.empty:
            return []
        elapsed = dict(zip(late["run_id"], late["elapsed"]))
        frame = self.index.query("SELECT run_id, task, grp, status, trigger_time, message FROM runs "
                                 f"WHERE run_id IN ({', '.join('?' * len(elapsed))}) ORDER BY started, run_id",
                                 list(elapsed))
        return [RunFacts(row.run_id, row.task, plain(row.grp), row.status, now, _pydatetime(row.trigger_time),
                         message=plain(row.message), late=True, elapsed=float(elapsed[row.run_id]))
                for row in frame.itertuples(index=False)]

    def _save(self, now: dt.datetime) -> None:
        """Write the state file whole (a new file renamed over the old): a crash leaves one or the other."""
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.state_path.with_name(self.state_path.name + ".new")
            partial.write_text(json.dumps(self.incidents.state(now), indent=1), encoding="utf-8")
            os.replace(partial, self.state_path)
        except OSError as exc:
            log.error("cannot keep the alerts' state in %s: %s (a restart may send some alerts again)",
                      self.state_path, exc)


def _read_state(path: Path) -> dict | None:
    """The state a previous alerter kept, or None (none yet, or unreadable: said, then started afresh)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("the alerts' state %s cannot be read (%s): starting afresh from now", path, exc)
        return None
    return state if isinstance(state, dict) and state.get("version") == 1 else None


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.rstrip("Z")) if text else None


def _pydatetime(value):
    value = plain(value)
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
