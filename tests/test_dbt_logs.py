"""taskdash follow-dbt-logs without dbt: dbt's JSON log lines go to the run of their model (or
of the invocation), a line whose run is not known yet waits with the ones after it, and a
node without a run is skipped once the invocation has ended. tests/integrations/test_dbt.py
runs it beside a real dbt-ol."""

from __future__ import annotations

import json

from dashboard.dbt_logs import DbtLogFollower

INVOCATION = "dc405c56-75ad-46bd-94a8-e8cdf92bd339"
ROOT, MODEL = "01a2359e-3afa-7d3f-9583-4aabb76ad70c", "01a2359e-6788-77cc-b9dd-9e9d8b8b7103"


def record(message: str, node: str | None = None) -> bytes:
    data = {"node_info": {"unique_id": node}} if node else {}
    return json.dumps({"data": data, "info": {"invocation_id": INVOCATION, "level": "info", "msg": message,
                                              "ts": "2026-12-02T07:18:23Z"}}).encode() + b"\n"


def event(run_id: str, name: str, event_type: str = "START", parent: bool = False) -> dict:
    facets = {"dbt_run": {"invocation_id": INVOCATION}}
    if parent:
        facets["parent"] = {"run": {"runId": ROOT}, "job": {"namespace": "dbt", "name": "dbt-run-shop"}}
    return {"eventType": event_type, "eventTime": "2026-12-02T07:18:23Z", "run": {"runId": run_id, "facets": facets},
            "job": {"namespace": "dbt", "name": name}}


def write_events(spool, *events):
    with open(spool / "events" / "dbt-ol.jsonl", "a", encoding="utf-8") as out:
        for one in events:
            out.write(json.dumps(one) + "\n")


def stdout(spool, run_id) -> list[str]:
    path = spool / "logs" / run_id / "stdout.log"
    return [line.split("INFO ", 1)[1] for line in path.read_text().splitlines()] if path.exists() else []


def test_lines_go_to_their_models_run_in_order_and_wait_for_it(tmp_path):
    spool, dbt_log = tmp_path / "spool", tmp_path / "logs" / "dbt.log"
    (spool / "events").mkdir(parents=True)
    dbt_log.parent.mkdir()
    write_events(spool, event(ROOT, "dbt-run-shop"))
    dbt_log.write_bytes(record("Running with dbt=1.11.16") + record("START revenue", "model.shop.revenue")
                        + record("Finished running 1 table model"))

    DbtLogFollower(dbt_log, spool).step()
    assert stdout(spool, ROOT) == ["Running with dbt=1.11.16"], "the model's run is not known yet: it and what follows wait"

    write_events(spool, event(MODEL, "model.shop.revenue", parent=True))
    DbtLogFollower(dbt_log, spool).step()  # restarted: goes on where it stopped
    assert stdout(spool, MODEL) == ["START revenue"]
    assert stdout(spool, ROOT) == ["Running with dbt=1.11.16", "Finished running 1 table model"]


def test_a_node_without_a_run_is_skipped_once_the_invocation_ended(tmp_path):
    spool, dbt_log = tmp_path / "spool", tmp_path / "logs" / "dbt.log"
    (spool / "events").mkdir(parents=True)
    dbt_log.parent.mkdir()
    write_events(spool, event(ROOT, "dbt-run-shop"))
    dbt_log.write_bytes(record("a seed's line", "seed.shop.countries") + record("Done. PASS=1"))
    follower = DbtLogFollower(dbt_log, spool)
    follower.step()
    assert stdout(spool, ROOT) == []

    write_events(spool, event(ROOT, "dbt-run-shop", "COMPLETE"))
    follower.step()
    assert stdout(spool, ROOT) == ["Done. PASS=1"]
    assert sorted(p.name for p in (spool / "logs").iterdir()) == [ROOT]
