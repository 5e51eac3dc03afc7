"""Alerts from a real `taskdash serve` process over a real spool, to a real local webhook receiver
and a real command: one alert per incident, within seconds, and nothing old after a restart."""

from __future__ import annotations

import datetime as dt
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import wait_until
from playwright.sync_api import expect
from serving import AlertReceiver, DashboardServer, dashboard_server

from dashboard.spool import SpoolWriter

#: The repeat window the served rules use: short, so its summary arrives within the test.
WINDOW = 4
#: Writes each alert the command receives on stdin into the folder it is given, one file each.
COMMAND = ("import json, os, pathlib, sys; alert = json.load(sys.stdin); "
           "pathlib.Path(sys.argv[1], f\"{alert['kind']}-{alert.get('run_id') or alert['first_run_id']}-{os.getpid()}"
           ".json\").write_text(json.dumps(alert))")


def settings(folder: Path, receiver: AlertReceiver, commands: Path | None = None) -> Path:
    """A settings file whose rules send every failure (also to the command) and every late run to
    `receiver`."""
    command = f"      command: {json.dumps([sys.executable, '-c', COMMAND, str(commands)])}\n      browser: true\n" \
        if commands else ""
    path = folder / "alerts.yaml"
    path.write_text(textwrap.dedent(f"""\
        alerts:
          repeat_window_seconds: {WINDOW}
          rules:
            - name: failures
              statuses: [FAILED, TERMINATED]
              webhook:
                url: {receiver.url}
                headers: {{X-Alert-Token: "${{TEST_ALERT_TOKEN}}"}}
                timeout_seconds: 5
                retries: 2
                backoff_seconds: 0.2
        """) + command + textwrap.indent(textwrap.dedent(f"""\
        - name: late
          late: true
          webhook: {receiver.url}
        """), "    "), encoding="utf-8")
    return path


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def fail(writer: SpoolWriter, run_id: str, task: str, message: str, trigger: dt.datetime | None = None) -> None:
    trigger = trigger or now()
    for status in ("TRIGGER", "STARTED", "RUNNING"):
        writer.status(run_id, task, status, agent="agent-1", trigger_time=trigger)
    writer.status(run_id, task, "FAILED", agent="agent-1", trigger_time=trigger, exit_code=1, message=message)


def barrier(writer: SpoolWriter, receiver: AlertReceiver, name: str) -> None:
    """Fail one more run and wait for its alert: every alert due before it has arrived by then
    (changes are decided, and alerts delivered, in order)."""
    writer.define_task(f"Marker_{name}", group="markers")
    fail(writer, f"marker-{name}", f"Marker_{name}", f"marker {name} reached")
    wait_until(lambda: receiver.bodies(run_id=f"marker-{name}"), timeout=20, message=f"the marker {name}'s alert")


@pytest.fixture(scope="module")
def served(tmp_path_factory, request):
    """One server for the module, its receiver, its spool writer and the command's folder."""
    folder = tmp_path_factory.mktemp("alerts")
    commands = folder / "commands"
    commands.mkdir()
    receiver = AlertReceiver()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("TEST_ALERT_TOKEN", "t0ken-from-the-environment")
    server = DashboardServer(folder, config=settings(folder, receiver, commands))
    try:
        yield server, receiver, SpoolWriter(server.spool, "alerts-test"), commands
    except BaseException:
        print("---- server output ----\n" + "".join(server.output))
        raise
    finally:
        server.stop()
        receiver.close()
        monkeypatch.undo()


def test_an_injected_failure_gives_exactly_one_alert_within_5_s(served):
    server, receiver, writer, _ = served
    writer.define_task("Load_Warehouse", group="etl")
    written = time.monotonic()
    fail(writer, "single-1", "Load_Warehouse", "warehouse refused the load: quota exceeded")
    arrived = wait_until(lambda: receiver.received and [t for t, body in list(receiver.received)
                                                       if body.get("run_id") == "single-1"], timeout=20,
                         message="the failure's alert")[0]
    print(f"failure written -> alert received: {(arrived - written) * 1000:.0f} ms")
    assert arrived - written < 5
    barrier(writer, receiver, "single")
    [alert] = receiver.bodies(run_id="single-1")
    assert alert["kind"] == "alert" and alert["rule"] == "failures" and alert["status"] == "FAILED"
    assert alert["text"] == "Load_Warehouse FAILED: warehouse refused the load: quota exceeded"
    assert alert["link"] == "/task-runs/single-1" and alert["group"] == "etl"
    headers = receiver.headers[receiver.received.index(next(r for r in receiver.received if r[1] is alert))]
    assert headers["X-Alert-Token"] == "t0ken-from-the-environment"


def test_a_cascade_of_40_blocked_runs_gives_one_alert_naming_its_root(served):
    server, receiver, writer, _ = served
    writer.define_task("Cascade_Root", group="cascade")
    downstream = [f"Cascade_{n:02d}" for n in range(40)]
    for task in downstream:
        writer.define_task(task, group="cascade", depends_on=["Cascade_Root"])
    trigger = now()
    for n, task in enumerate(downstream):  # waiting for their upstream, as the runner leaves them
        writer.status(f"cascade-{n:02d}", task, "ACTIVE", trigger_time=trigger)
    fail(writer, "cascade-root", "Cascade_Root", "source table vanished", trigger)
    for n, task in enumerate(downstream):  # then ended, as the built-in runner ends blocked runs
        writer.status(f"cascade-{n:02d}", task, "TERMINATED", trigger_time=trigger,
                      message="upstream Cascade_Root failed")
    barrier(writer, receiver, "cascade")
    cascade = [body for body in receiver.bodies() if str(body.get("run_id", "")).startswith("cascade-")]
    assert [body["run_id"] for body in cascade] == ["cascade-root"]
    assert cascade[0]["blocks"] == 40 and cascade[0]["text"].endswith("· blocks 40")


def test_five_failures_with_one_signature_give_one_alert_and_then_a_count(served):
    server, receiver, writer, _ = served
    writer.define_task("Flaky_Fetch", group="etl")
    for n in range(5):
        fail(writer, f"flaky-{n}", "Flaky_Fetch", f"connection reset by peer after {n + 2} retries (port {8000 + n})")
    summary = wait_until(lambda: receiver.bodies(kind="repeated", first_run_id="flaky-0"), timeout=WINDOW + 20,
                         message="the summary of the repeats")[0]
    assert [body["run_id"] for body in receiver.bodies(kind="alert") if body["task"] == "Flaky_Fetch"] == ["flaky-0"]
    assert summary["repeated"] == 4 and "repeated 4 times" in summary["text"]
    assert summary["run_ids"] == ["flaky-1", "flaky-2", "flaky-3", "flaky-4"]


def test_a_run_running_late_gives_one_alert_within_seconds_of_becoming_late(served):
    server, receiver, writer, _ = served
    writer.define_task("Nightly_Report", group="reports")
    long_ago = now() - dt.timedelta(days=1)
    for n in range(6):  # 1 to 2 s each, in the past: lateness comes after about 2 s
        began = long_ago + dt.timedelta(minutes=n)
        writer.status(f"report-{n}", "Nightly_Report", "RUNNING", agent="agent-1", ts=began, trigger_time=began)
        writer.status(f"report-{n}", "Nightly_Report", "SUCCESS", agent="agent-1", exit_code=0, trigger_time=began,
                      ts=began + dt.timedelta(seconds=1 + n / 5))
    began = now()
    writer.status("report-now", "Nightly_Report", "RUNNING", agent="agent-1", ts=began, trigger_time=began)
    late_at = began + dt.timedelta(seconds=1.9)  # the 90th percentile of 1, 1.2, ..., 2 s
    alert = wait_until(lambda: receiver.bodies(run_id="report-now"), timeout=30, message="the late run's alert")[0]
    arrived = now()
    print(f"late from {late_at:%H:%M:%S.%f}, alert at {arrived:%H:%M:%S.%f}: "
          f"{(arrived - late_at).total_seconds():.1f} s after")
    assert alert["rule"] == "late" and alert["late"] and alert["status"] == "RUNNING"
    assert alert["text"].startswith("Nightly_Report RUNNING late: ") and alert["link"] == "/task-runs/report-now"
    assert 0 <= (arrived - late_at).total_seconds() < 5
    barrier(writer, receiver, "late")
    assert len(receiver.bodies(run_id="report-now")) == 1, "still late at every later check: told once"


def test_the_command_receives_the_alert_as_json_on_stdin(served):
    server, receiver, writer, commands = served
    writer.define_task("Send_Invoices", group="billing")
    fail(writer, "command-1", "Send_Invoices", "smtp server said 554 'rejected'")
    path = wait_until(lambda: next(commands.glob("alert-command-1-*.json"), None), timeout=30,
                      message="the command to write the alert it got")
    wait_until(lambda: path.stat().st_size, timeout=10, message="the command to finish writing")
    alert = json.loads(path.read_text(encoding="utf-8"))
    assert alert["run_id"] == "command-1" and alert["task"] == "Send_Invoices" and alert["status"] == "FAILED"


def test_a_restarted_server_sends_nothing_old_even_when_its_index_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_ALERT_TOKEN", "t")
    receiver = AlertReceiver()
    config = settings(tmp_path, receiver)
    index = tmp_path / "index.duckdb"
    try:
        with dashboard_server(tmp_path, config=config, index=index) as server:
            writer = SpoolWriter(server.spool, "before")
            writer.define_task("Nightly_Export", group="etl")
            fail(writer, "old-1", "Nightly_Export", "export bucket is full")
            wait_until(lambda: receiver.bodies(run_id="old-1"), timeout=20, message="the first server's alert")
        assert Path(f"{index}.alerts.json").exists()
        index.unlink()  # the next server reads the whole spool again: every old run is a change once more
        with dashboard_server(tmp_path, config=config, index=index) as server:
            server.wait_for_output("index caught up with the spool")
            writer = SpoolWriter(server.spool, "after")
            fail(writer, "new-1", "Nightly_Export", "export bucket is full again, disk 2")
            wait_until(lambda: receiver.bodies(run_id="new-1"), timeout=20, message="the second server's alert")
        assert [body["run_id"] for body in receiver.bodies()] == ["old-1", "new-1"]
    finally:
        receiver.close()


@pytest.mark.ui
def test_a_page_that_asked_for_alerts_shows_them_as_text(served, page, tmp_path):
    server, receiver, writer, _ = served
    page.goto(server.url + "/task-runs")
    toggle = page.get_by_role("button", name="Notify me")
    expect(toggle).to_be_visible(timeout=60_000)
    toggle.click()
    expect(page.get_by_role("button", name="Notifying ✓")).to_be_visible(timeout=20_000)  # the server heard it
    writer.define_task("Browser_Check", group="etl")
    fail(writer, "browser-1", "Browser_Check", "<b>not bold</b> & broken")
    notice = page.locator(".notyf__message", has_text="Browser_Check FAILED")
    expect(notice).to_have_text("Browser_Check FAILED: <b>not bold</b> & broken", timeout=20_000)
    expect(page.locator(".notyf__message b")).to_have_count(0)
    expect(page.locator(".notyf__message", has_text="Browser_Check FAILED")).to_have_count(1)
    page.screenshot(path=str(tmp_path / "alert-notice.png"))
    print(f"screenshot: {tmp_path / 'alert-notice.png'}")
