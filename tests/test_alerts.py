"""Alert rules as panel_serve.yaml gives them, and the once-per-incident logic over changed runs."""

from __future__ import annotations

import datetime as dt
import re
import textwrap

import pytest

from dashboard.alert_rules import AlertConfigError, AlertSettings, Command, Rule, Webhook, parse_alerts
from dashboard.alerts import Incidents, RunFacts
from dashboard.config import ConfigError, load_config

T0 = dt.datetime(2026, 12, 2, 8, 0, 0)
HOOK = Webhook("http://127.0.0.1:9/hook")


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def failed(run_id: str, seconds: float = 1, task: str = "Extract", group: str | None = "etl", status="FAILED",
           signature: str | None = None, **facts) -> RunFacts:
    return RunFacts(run_id, task, group, status, at(seconds), signature=signature or f"error of {run_id}", **facts)


def incidents(*rules: Rule, window: float = 60, state=None) -> Incidents:
    return Incidents(AlertSettings(rules or (Rule("failures", webhook=HOOK),), window), state, now=T0)


# ---- the settings ----------------------------------------------------------------------------------------------

def test_a_rule_with_a_webhook_and_a_command_is_read_with_its_secret_from_the_environment(tmp_path):
    settings = parse_alerts({"repeat_window_seconds": 600, "rules": [{
        "name": "billing failures", "statuses": ["failed"], "group": "billing", "task_text": "invoice",
        "webhook": {"url": "https://hooks.example.com/x", "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"},
                    "timeout_seconds": 2, "retries": 4},
        "command": ["/usr/bin/logger", "-t", "taskdash"]}]}, tmp_path, environ={"HOOK_TOKEN": "s3cret"})
    rule = settings.rules[0]
    assert settings.repeat_window_seconds == 600
    assert rule.statuses == ("FAILED",) and rule.group == "billing" and rule.root_cause_only
    assert rule.webhook.headers == (("Authorization", "Bearer s3cret"),)
    assert (rule.webhook.timeout_seconds, rule.webhook.retries) == (2, 4)
    assert rule.command == Command(("/usr/bin/logger", "-t", "taskdash"))
    assert settings.state_path(tmp_path / "x.duckdb") == tmp_path / "x.duckdb.alerts.json"


@pytest.mark.parametrize("rules, named", [
    ([{"name": "a", "statuses": ["BROKEN"], "command": ["true"]}], "alerts.rules[0].statuses: unknown status"),
    ([{"name": "a"}], "alerts.rules[0] has no action"),
    ([{"name": "a", "webhook": {"url": "ftp://x"}}], "alerts.rules[0].webhook.url must be an http(s) URL"),
    ([{"name": "a", "command": "rm -rf / ; echo"}], "alerts.rules[0].command must be a list"),
    ([{"name": "a", "command": ["true"], "colour": "red"}], "unknown setting alerts.rules[0].colour"),
    ([{"name": "a", "command": ["true"], "late": True, "statuses": ["FAILED"]}],
     "alerts.rules[0].statuses: a late rule is about runs still under way"),
    ([{"name": "a", "command": ["true"], "late": "yes"}], "alerts.rules[0].late must be true or false"),
    ([{"name": "a", "webhook": {"url": "http://x", "retries": 99}}], "alerts.rules[0].webhook.retries"),
    ([{"name": "a", "webhook": {"url": "http://x", "headers": {"X-Key": "${NOT_SET_ANYWHERE}"}}}],
     "alerts.rules[0].webhook.headers.X-Key names the environment variable $NOT_SET_ANYWHERE"),
    ([{"name": "a", "command": ["true"]}, {"name": "a", "command": ["false"]}], "two rules are named 'a'"),
])
def test_a_bad_rule_is_refused_naming_the_setting(tmp_path, rules, named):
    with pytest.raises(AlertConfigError, match=re.escape(named)):
        parse_alerts({"rules": rules}, tmp_path, environ={})


def test_the_settings_file_refuses_a_bad_alert_rule_with_its_own_name(tmp_path):
    path = tmp_path / "panel_serve.yaml"
    path.write_text(textwrap.dedent("""
        alerts:
          rules:
            - name: x
              statuses: [FAILD]
              command: [cat]
    """))
    with pytest.raises(ConfigError, match=r"panel_serve.yaml: alerts.rules\[0\].statuses: unknown status 'FAILD'"):
        load_config(path)


def test_the_shipped_settings_file_has_no_rules():
    assert load_config("panel_serve.yaml").alerts.rules == ()


def test_a_rule_matches_on_status_group_and_task_text_together():
    rule = Rule("r", statuses=("FAILED",), group="billing", task_text="INVOICE", webhook=HOOK)
    assert rule.matches("Generate_Invoice", "billing", "FAILED")
    assert not rule.matches("Generate_Invoice", "billing", "TERMINATED")
    assert not rule.matches("Generate_Invoice", "etl", "FAILED")
    assert not rule.matches("Send_Email", "billing", "FAILED")
    assert Rule("any", webhook=HOOK).matches("x", None, "TERMINATED")


# ---- once per incident -----------------------------------------------------------------------------------------

def test_a_failure_gives_one_alert_and_hearing_of_the_run_again_gives_none():
    alerts = incidents()
    sent = alerts.decide(failed("r1", error_line="KeyError: 'x'"), at(2))
    assert [alert["run_id"] for _, alert in sent] == ["r1"]
    assert sent[0][1]["text"] == "Extract FAILED: KeyError: 'x'" and sent[0][1]["root_cause"]
    assert alerts.decide(failed("r1", seconds=3), at(4)) == []


def test_a_run_no_rule_is_about_gives_nothing():
    alerts = incidents(Rule("billing", group="billing", webhook=HOOK))
    assert alerts.decide(failed("r1", group="etl"), at(2)) == []
    assert alerts.decide(failed("r2", status="SUCCESS", group="billing"), at(2)) == []


def test_a_cascade_is_one_alert_naming_its_root_and_what_it_blocks():
    alerts = incidents()
    sent = alerts.decide(failed("root", blocks=40), at(2))
    for n in range(40):  # the built-in runner ends blocked runs TERMINATED
        sent += alerts.decide(failed(f"b{n}", status="TERMINATED", task=f"T{n}", blocked_by="root",
                                     blocked_by_task="Extract"), at(3))
    assert len(sent) == 1
    assert sent[0][1]["text"].endswith("· blocks 40") and sent[0][1]["blocks"] == 40


def test_a_blocked_run_alerts_for_its_root_only_when_the_rule_is_not_root_cause_only():
    rule = Rule("everything", root_cause_only=False, statuses=("TERMINATED",), webhook=HOOK)
    alerts = incidents(rule)
    first = alerts.decide(failed("b1", status="TERMINATED", blocked_by="root", blocked_by_task="Extract"), at(2))
    later = alerts.decide(failed("b2", status="TERMINATED", blocked_by="root", blocked_by_task="Extract"), at(3))
    assert len(first) == 1 and later == []
    assert first[0][1]["root_cause_run_id"] == "root" and first[0][1]["link"] == "/task-runs/root"
    assert incidents().decide(failed("b1", status="TERMINATED", blocked_by="root"), at(2)) == []


def test_repeats_of_one_signature_within_the_window_are_counted_then_summarised():
    alerts = incidents(window=60)
    sent = [alert for n in range(5) for _, alert in alerts.decide(failed(f"r{n}", signature="KeyError: '…'"), at(n))]
    assert [alert["run_id"] for alert in sent] == ["r0"]
    assert alerts.close_windows(at(59)) == []
    [(_, summary)] = alerts.close_windows(at(61))
    assert summary["kind"] == "repeated" and summary["repeated"] == 4 and "repeated 4 times" in summary["text"]
    assert summary["run_ids"] == ["r1", "r2", "r3", "r4"]
    assert [a["run_id"] for _, a in alerts.decide(failed("r5", seconds=70, signature="KeyError: '…'"), at(70))] \
        == ["r5"]


def test_a_window_without_repeats_closes_silently_and_other_signatures_alert():
    alerts = incidents(window=60)
    assert len(alerts.decide(failed("r1", signature="a"), at(1))) == 1
    assert len(alerts.decide(failed("r2", signature="b"), at(2))) == 1
    assert alerts.close_windows(at(100)) == []


def test_a_restarted_alerter_sends_nothing_old_and_remembers_open_incidents():
    first = incidents()
    first.decide(failed("root", seconds=5, blocks=2), at(6))
    state = first.state(at(7))
    again = incidents(state=state)
    assert again.start_point == at(5)
    assert again.decide(failed("root", seconds=5, blocks=2), at(8)) == []  # ingested again after a rebuild
    assert again.decide(failed("older", seconds=4), at(8)) == []
    assert again.decide(failed("b1", seconds=9, status="TERMINATED", blocked_by="root"), at(9)) == []
    assert [a["run_id"] for _, a in again.decide(failed("new", seconds=9), at(9))] == ["new"]


def test_a_first_start_alerts_nothing_from_before_it():
    alerts = incidents()  # no state: the start (T0) is the point
    assert alerts.decide(failed("old", seconds=-30), at(1)) == []


def test_a_rule_may_only_show_its_alerts_on_pages(tmp_path):
    [rule] = parse_alerts({"rules": [{"name": "pages", "browser": True}]}, tmp_path, environ={}).rules
    assert rule.browser and rule.actions == ()
    with pytest.raises(AlertConfigError, match=r"alerts.rules\[0\].browser must be true or false"):
        parse_alerts({"rules": [{"name": "pages", "browser": "yes"}]}, tmp_path, environ={})


def test_pages_are_offered_only_the_alerts_after_the_last_they_showed(tmp_path):
    from dashboard.alerts import Alerter
    from dashboard.changes import Change

    settings = AlertSettings((Rule("pages", browser=True),), 60)
    alerter = Alerter(index=None, hub=None, settings=settings, state_path=tmp_path / "state.json")
    alerter.changed_runs = lambda change: [failed(run_id, seconds=n + 1) for n, run_id in enumerate(change.runs)]
    assert alerter.for_browser and alerter.browser_alerts(None) == []
    alerter.incidents.start_point = T0
    alerter._handle(Change(runs={"r1": None, "r2": None}))
    assert [(n, alert["run_id"]) for n, alert in alerter.browser_alerts(0)] == [(1, "r1"), (2, "r2")]
    assert [n for n, _ in alerter.browser_alerts(None)] == [2]
    assert alerter.browser_alerts(2) == []


def test_the_alerter_reads_roots_blocked_runs_and_signatures_from_a_real_index(tmp_path):
    from dashboard.alerts import Alerter
    from dashboard.changes import Change
    from dashboard.index import Index
    from dashboard.ingest import Ingestor
    from dashboard.spool import SpoolWriter

    writer = SpoolWriter(tmp_path / "spool")
    writer.define_task("Root", group="etl")
    for n in range(3):
        writer.define_task(f"Down{n}", group="etl", depends_on=["Root"])
    trigger = dt.datetime.now(dt.timezone.utc)
    for n in range(3):
        writer.status(f"down-{n}", f"Down{n}", "ACTIVE", trigger_time=trigger)
    for status in ("RUNNING", "FAILED"):
        writer.status("root", "Root", status, trigger_time=trigger, message="lost 3 rows at 12:00:01")
    writer.status("down-0", "Down0", "TERMINATED", trigger_time=trigger, message="upstream Root failed")
    index = Index(tmp_path / "index.duckdb")
    try:
        Ingestor(index, tmp_path / "spool").catch_up()
        alerter = Alerter(index, None, AlertSettings((Rule("f", webhook=HOOK),)), tmp_path / "state.json")
        alerter.incidents.start_point = T0 - dt.timedelta(days=1)
        runs = {run.run_id: run for run in alerter.changed_runs(Change(runs={"root": None, "down-0": None}))}
    finally:
        index.close()
    assert (runs["root"].blocked_by, runs["root"].blocks) == (None, 3)
    assert runs["root"].signature == "lost <n> rows at <time>"
    assert (runs["down-0"].blocked_by, runs["down-0"].blocked_by_task) == ("root", "Root")


# ---- late runs ----------------------------------------------------------------------------------------------------

def late(run_id: str, seconds: float, task: str = "Report", elapsed: float = 95.0) -> RunFacts:
    return RunFacts(run_id, task, "etl", "RUNNING", at(seconds), late=True, elapsed=elapsed)


def test_a_late_rule_is_about_runs_under_way_unless_it_names_them(tmp_path):
    [rule, running] = parse_alerts({"rules": [{"name": "late", "late": True, "command": ["true"]},
                                              {"name": "running late", "late": True, "statuses": ["running"],
                                               "command": ["true"]}]}, tmp_path, environ={}).rules
    assert rule.late and rule.statuses == ("STARTED", "RUNNING") and running.statuses == ("RUNNING",)


def test_a_late_run_is_alerted_once_by_late_rules_and_never_by_the_others():
    late_rule, failures = Rule("late", late=True, statuses=("STARTED", "RUNNING"), webhook=HOOK), \
        Rule("failures", webhook=HOOK)
    found = incidents(late_rule, failures)
    [(rule, alert)] = found.decide(late("slow-1", 5), at(5))
    assert rule is late_rule and alert["late"] and alert["elapsed_seconds"] == 95.0
    assert alert["text"] == "Report RUNNING late: 1m 35s so far, longer than 9 in 10 of its recent runs"
    assert found.decide(late("slow-1", 7, elapsed=97), at(7)) == []  # still late: told already
    assert [rule.name for rule, _ in found.decide(failed("slow-1", 9, task="Report"), at(9))] == ["failures"]
    running = RunFacts("slow-2", "Report", "etl", "RUNNING", at(10))  # a change, not lateness
    assert found.decide(running, at(10)) == []


def test_a_run_found_late_is_alerted_even_when_its_last_change_is_older_than_the_start():
    found = incidents(Rule("late", late=True, statuses=("STARTED", "RUNNING"), webhook=HOOK))
    found.start_point = found.point = at(100)
    assert len(found.decide(late("slow-1", 50), at(200))) == 1
    assert found.point == at(100), "lateness, noticed by the clock, does not move the point of changes seen"


def test_the_alerter_finds_runs_past_their_task_s_90th_percentile_in_a_real_index(tmp_path):
    from dashboard.alerts import Alerter
    from dashboard.index import Index
    from dashboard.ingest import Ingestor
    from dashboard.spool import SpoolWriter

    writer = SpoolWriter(tmp_path / "spool")
    start = dt.datetime(2026, 12, 2, 6, 0)
    for n in range(8):  # Report takes 60 to 74 s; Rare ran twice, too few for an estimate
        for task, seconds in (("Report", 60 + 2 * n), ("Rare", 10)):
            if task == "Rare" and n >= 2:
                continue
            began = start + dt.timedelta(minutes=5 * n)
            writer.status(f"{task}-{n}", task, "RUNNING", ts=began, trigger_time=began)
            writer.status(f"{task}-{n}", task, "SUCCESS", ts=began + dt.timedelta(seconds=seconds), trigger_time=began)
    began = start + dt.timedelta(hours=1)
    for task in ("Report", "Rare"):
        writer.status(f"{task}-now", task, "RUNNING", ts=began, trigger_time=began)
    writer.status("Report-early", "Report", "RUNNING", ts=began + dt.timedelta(seconds=30), trigger_time=began)
    index = Index(tmp_path / "index.duckdb")
    try:
        Ingestor(index, tmp_path / "spool").catch_up()
        alerter = Alerter(index, None, AlertSettings((Rule("late", statuses=("RUNNING",), late=True, webhook=HOOK),)),
                          tmp_path / "state.json")
        now = began + dt.timedelta(seconds=80)
        found = alerter.late_runs(now)
    finally:
        index.close()
    assert [(run.run_id, run.elapsed, run.updated) for run in found] == [("Report-now", 80.0, now)]
    assert alerter.statuses == [], "a late rule does not ask for status changes"
