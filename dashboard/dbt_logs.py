"""dbt's log into the spool's run logs: `taskdash follow-dbt-logs --log PROJECT/logs/dbt.log
--spool DIR` copies each line of dbt's JSON log, live, to the `stdout.log` of the OpenLineage
run it belongs to: a model's lines to the model's run, the rest to the invocation's run.

dbt writes its log file as JSON lines when run by `dbt-ol --consume-structured-logs` (or with
`--log-format-file json`): each line names its invocation (`info.invocation_id`) and, for a
node's lines, the node (`data.node_info.unique_id`). dbt-ol's events carry the same invocation
id (the `dbt_run` run facet) and name a model's job by its unique id; the invocation's own run
is the one without a `parent`. So the runs are learned from the spool's OpenLineage lines.

A line whose run has sent no event yet waits (with the lines after it, so their order is kept)
until the event arrives, or until the invocation's run has ended: then a line of a node that has
no run (dbt-ol sends none for some nodes) is skipped. Each line reads "[time] LEVEL message".
Like every follower (`log_follower`), it also writes FAIL events' stack traces into the runs'
`stderr.log`, and remembers what it copied in `<spool>/follow-dbt-logs.json`.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from .log_follower import LogFollower

STATE_NAME = "follow-dbt-logs"
_TERMINAL = ("COMPLETE", "FAIL", "ABORT")


def line_of(record: dict) -> tuple[str | None, str | None, str]:
    """A dbt JSON log record's invocation id, node unique id (None for the invocation's own
    lines) and text line."""
    info = record.get("info") if isinstance(record.get("info"), dict) else {}
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    node = data.get("node_info") if isinstance(data.get("node_info"), dict) else {}
    text = f"[{info.get('ts', '')}] {str(info.get('level', '')).upper()} {info.get('msg', '')}"
    return info.get("invocation_id"), node.get("unique_id") or None, text + "\n"


class DbtLogFollower(LogFollower):
    """Copies dbt's JSON log (and FAIL events' stack traces) into a spool."""

    def __init__(self, dbt_log: str | Path, spool: str | Path):
        super().__init__(spool, STATE_NAME)
        self.dbt_log = Path(dbt_log)
        #: (invocation id, node unique id or None for the invocation) -> OpenLineage run id
        self.runs: dict[tuple[str, str | None], str] = {}
        self.ended: set[str] = set()  # invocations whose own run has ended

    def learn(self, event: dict) -> None:
        super().learn(event)
        run, job = event.get("run"), event.get("job")
        if not isinstance(run, dict) or not isinstance(job, dict) or not isinstance(run.get("facets"), dict):
            return
        dbt_run = run["facets"].get("dbt_run")
        invocation = dbt_run.get("invocation_id") if isinstance(dbt_run, dict) else None
        if not isinstance(invocation, str) or not isinstance(run.get("runId"), str):
            return
        node = job.get("name") if "parent" in run["facets"] else None
        self.runs[invocation, node] = run["runId"]
        if node is None and event.get("eventType") in _TERMINAL:
            self.ended.add(invocation)

    def copy_new(self, changed: set[Path] | None) -> int:
        if not self.dbt_log.is_file() or self.unchanged(self.dbt_log, str(self.dbt_log)):
            return 0
        key = str(self.dbt_log)
        whole, inode, offset = self.new_lines(self.dbt_log, key)
        done, texts = 0, {}
        for raw in whole.splitlines(keepends=True):
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            if isinstance(record, dict):
                invocation, node, text = line_of(record)
                run_id = self.runs.get((invocation, node))
                if run_id is None and invocation not in self.ended:
                    break  # its run is not known yet: this line and the ones after it wait
                if run_id is not None:
                    texts.setdefault(run_id, []).append(text)
            done += len(raw)
        for run_id, lines in texts.items():
            self.append(run_id, "".join(lines))
        if done:
            self.copied(key, inode, offset + done)
        return done

    def follow(self, stop: threading.Event, rescan: float = 30.0) -> None:
        super().follow(stop, [self.dbt_log.parent], rescan)
