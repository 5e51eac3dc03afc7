"""The operator CLI, run as a real `taskdash` process against a real spool and index."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys

import pytest
from helpers import read_events, wait_until

from dashboard.spool import SpoolWriter

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture
def spool(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("Generate_Invoice", "billing", ["Fetch_Orders"])
    writer.define_task("Fetch_Orders", "billing")
    for run_id, task, status, hours_ago in [("r-old", "Fetch_Orders", "SUCCESS", 30),
                                            ("r-ok", "Fetch_Orders", "SUCCESS", 2),
                                            ("r-bad", "Generate_Invoice", "FAILED", 1)]:
        start = NOW - dt.timedelta(hours=hours_ago)
        writer.status(run_id, task, "TRIGGER", ts=start)
        writer.status(run_id, task, "RUNNING", agent="agent-2", ts=start + dt.timedelta(seconds=1))
        writer.status(run_id, task, status, agent="agent-2", ts=start + dt.timedelta(seconds=5),
                      exit_code=0 if status == "SUCCESS" else 4)
    writer.append_log("r-bad", "stdout", "".join(f"line {n}\n" for n in range(1, 1201)))
    writer.append_log("r-bad", "stderr", "WARN slow\nERROR invoice 17 failed\nerror: again\n")
    with open(writer.events_path, "ab") as handle:
        handle.write(b'{"kind": "status", "run_id": "../../etc", "task": "A", "status": "RUNNING", '
                     b'"ts": "2026-11-28T12:00:00Z"}\n')
    return tmp_path / "spool"


def taskdash(tmp_path, *args, check=True):
    index = [] if args[0] == "terminate" else ["--index", str(tmp_path / "index.duckdb")]
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", *args, "--spool", str(tmp_path / "spool"),
                             *index],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_ingest_prints_the_counts_and_rebuild_gives_the_same(tmp_path, spool):
    first = taskdash(tmp_path, "ingest").stdout
    assert "2 tasks, 3 runs, 1,203 log lines, 1 ingest errors" in first
    rebuilt = taskdash(tmp_path, "ingest", "--rebuild").stdout
    assert "2 tasks, 3 runs, 1,203 log lines, 1 ingest errors" in rebuilt


def test_runs_json_lists_newest_first_with_filters(tmp_path, spool):
    runs = json.loads(taskdash(tmp_path, "runs", "--json").stdout)
    assert [r["run_id"] for r in runs] == ["r-bad", "r-ok", "r-old"]
    bad = runs[0]
    assert {"run_id", "task", "group", "status", "agent", "adhoc", "trigger_time", "started", "finished",
            "exit_code"} <= set(bad)
    assert bad["group"] == "billing" and bad["status"] == "FAILED" and bad["exit_code"] == 4
    assert bad["adhoc"] is False and bad["agent"] == "agent-2"
    assert bad["finished"].endswith("Z") and dt.datetime.fromisoformat(bad["finished"]) <= NOW

    failed = json.loads(taskdash(tmp_path, "runs", "--json", "--status", "failed").stdout)
    assert [r["run_id"] for r in failed] == ["r-bad"]
    recent = json.loads(taskdash(tmp_path, "runs", "--json", "--since", "6h", "--task", "fetch").stdout)
    assert [r["run_id"] for r in recent] == ["r-ok"]
    table = taskdash(tmp_path, "runs").stdout
    assert table.splitlines()[0].split()[:4] == ["RUN_ID", "TASK", "GROUP", "STATUS"]


def test_runs_rejects_a_bad_time_range(tmp_path, spool):
    result = taskdash(tmp_path, "runs", "--since", "yesterday", check=False)
    assert result.returncode == 1 and "not a time range" in result.stderr


def test_logs_pages_and_search(tmp_path, spool):
    page2 = taskdash(tmp_path, "logs", "r-bad", "--page", "2")
    lines = page2.stdout.splitlines()
    assert len(lines) == 500 and lines[0].split() == ["501", "line", "501"] and lines[-1].split()[0] == "1000"
    assert "page 2 of 3, 1,200 lines" in page2.stderr
    last = taskdash(tmp_path, "logs", "r-bad", "--page", "-1").stdout.splitlines()
    assert [line.split()[0] for line in last] == [str(n) for n in range(1001, 1201)]
    found = taskdash(tmp_path, "logs", "r-bad", "--stream", "stderr", "--search", "ERROR")
    assert [line.split()[0] for line in found.stdout.splitlines()] == ["2", "3"]
    assert "2 matching lines of 3" in found.stderr


def test_a_command_reading_a_log_makes_no_copy_of_it(tmp_path, spool, monkeypatch, capsys):
    """A server copies a finished log once it is read, for the pages and searches after it
    (dashboard.log_copies); a command reads it once and would only wait on its copy."""
    from dashboard import cli
    from dashboard.log_copies import LogCopies

    made, original = [], LogCopies.__init__

    def noted(self, *args, **kwargs):
        made.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(LogCopies, "__init__", noted)
    where = ["--spool", str(tmp_path / "spool"), "--index", str(tmp_path / "index.duckdb")]
    assert cli.main(["logs", "r-bad", *where]) == 0
    assert cli.main(["logs", "r-bad", "--search", "line 1", *where]) == 0
    assert "line 1" in capsys.readouterr().out
    assert made == []


def test_logs_of_an_unknown_or_invalid_run_say_so(tmp_path, spool):
    unknown = taskdash(tmp_path, "logs", "r-nope", check=False)
    assert unknown.returncode == 1 and "no run 'r-nope'" in unknown.stderr
    invalid = taskdash(tmp_path, "logs", "../../etc", check=False)
    assert invalid.returncode == 1 and "bad run_id" in invalid.stderr
    assert "Traceback" not in unknown.stderr + invalid.stderr


def test_errors_lists_the_bad_line_with_file_byte_offset_and_line_number(tmp_path, spool):
    result = taskdash(tmp_path, "errors")
    assert "events/" in result.stdout and "bad run_id" in result.stdout
    # "byte 17" could not be read as a line number; the line number is given too.
    match = re.search(r"\.jsonl byte (\d+), line (\d+)", result.stdout)
    assert match, result.stdout
    offset, line = int(match[1]), int(match[2])
    data = next((spool / "events").glob("*.jsonl")).read_bytes()
    assert data[offset:].startswith(b'{"kind": "status", "run_id": "../../etc"')
    assert data.split(b"\n")[line - 1].startswith(b'{"kind": "status", "run_id": "../../etc"')


def test_adhoc_runs_a_command_and_the_index_shows_it(tmp_path, spool):
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", "adhoc", "--spool", str(spool),
                             "--agent", "ops-laptop", "--", "sh", "-c", "echo hello from adhoc; exit 3"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "hello from adhoc\n", "the command's output is echoed"
    runs = json.loads(taskdash(tmp_path, "runs", "--json", "--task", "Adhoc_sh").stdout)
    assert len(runs) == 1
    assert runs[0]["adhoc"] is True and runs[0]["status"] == "FAILED" and runs[0]["exit_code"] == 3
    assert runs[0]["agent"] == "ops-laptop"
    assert "hello from adhoc" in taskdash(tmp_path, "logs", runs[0]["run_id"]).stdout


def test_terminate_of_a_run_that_is_not_running_says_so(tmp_path, spool):
    result = taskdash(tmp_path, "terminate", "r-ok", check=False)
    assert result.returncode == 1 and "not running" in result.stderr


def test_a_bad_workflow_is_a_clear_error(tmp_path):
    workflow = tmp_path / "flow.yaml"
    workflow.write_text("tasks:\n  A: {command: 'true', depends_on: [B]}\n")
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", "run", str(workflow), "--spool",
                             str(tmp_path / "spool")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "unknown task 'B'" in result.stderr


def test_adhoc_echoes_both_streams_without_loading_pandas_or_panel(tmp_path):
    script = ("import sys; from dashboard import cli; code = cli.main(['adhoc', '--spool', sys.argv[1], '--', "
              "'sh', '-c', 'echo to out; echo to err >&2']); "
              "print(sorted(m for m in ('panel', 'bokeh', 'pandas') if m in sys.modules), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "spool")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "to out\n"
    assert "to err\n" in result.stderr
    assert result.stderr.rstrip().endswith("[]"), "adhoc imported what it does not need: " + result.stderr


def test_a_read_command_says_once_that_the_index_is_in_use(tmp_path, spool):
    import duckdb

    holder = duckdb.connect(str(tmp_path / "index.duckdb"))  # as a running server holds it
    try:
        result = taskdash(tmp_path, "runs")
    finally:
        holder.close()
    assert result.stderr.count("in use") == 1, result.stderr
    assert "r-bad" in result.stdout


def test_control_characters_from_the_spool_are_escaped_on_the_terminal_and_exact_in_json(tmp_path):
    # Issue 23: this task name cleared the operator's screen and set the terminal's title.
    hostile = "Evil\x1b[2J\x1b]0;PWNED\x07\x9b6n"
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task(hostile, "g\x1b[31m")
    writer.status("r-evil", hostile, "RUNNING", agent="agent\r\x08")
    writer.append_log("r-evil", "stdout", "\x1b[31mred\x1b[0m then \x1b]0;TITLE\x07 and \x1b[2J\n")
    table = taskdash(tmp_path, "runs").stdout
    row = table.splitlines()[1]
    assert "Evil\\x1b[2J\\x1b]0;PWNED\\x07\\x9b6n" in row and "g\\x1b[31m" in row and "agent\\r\\x08" in row
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", table), "no control character reaches the terminal"
    runs = json.loads(taskdash(tmp_path, "runs", "--json").stdout)
    assert (runs[0]["task"], runs[0]["group"], runs[0]["agent"]) == (hostile, "g\x1b[31m", "agent\r\x08")
    log = taskdash(tmp_path, "logs", "r-evil").stdout
    assert log.split(None, 1)[1] == "red then  and \n"


def test_serve_demo_without_its_workflow_is_a_clear_error(tmp_path):
    """From a folder that has no data/demo_workflow.yaml (and no settings file naming one), the server
    served an empty dashboard while its runner had already ended."""
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", "serve", "--demo", "--port", "1",
                             "--spool", str(tmp_path / "spool"), "--index", str(tmp_path / "index.duckdb")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"--demo runs the workflow {tmp_path / 'data' / 'demo_workflow.yaml'}, which is not there" \
        in result.stderr.replace("\n", " ")


def test_the_runner_ends_its_runs_and_itself_on_sigterm_twice(tmp_path):
    """`serve --demo` stopped by its process group sends its runner SIGTERM twice (the group's, then
    its own): the runner ends its running run and itself."""
    workflow = tmp_path / "flow.yaml"
    workflow.write_text("name: t\nschedule: every 1h\nagents: {a: 2}\n"
                        "tasks:\n  Slow: {command: 'sleep 60', group: g}\n")
    spool = tmp_path / "spool"
    runner = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "run", str(workflow), "--spool", str(spool)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: "RUNNING" in [e.get("status") for e in read_events(spool)], timeout=60,
                   message="the slow run to start")
        runner.send_signal(signal.SIGTERM)
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, err
    ends = [e for e in read_events(spool) if e.get("status") == "TERMINATED"]
    assert [(e["task"], e["message"]) for e in ends] == [("Slow", "killed by SIGTERM on request")]


def test_serve_kills_a_child_that_does_not_end_on_sigterm(monkeypatch, capsys):
    """A runner that does not end within CHILD_STOP_SECONDS of SIGTERM was left running, and `serve`
    ended with a TimeoutExpired traceback."""
    from dashboard import cli
    monkeypatch.setattr(cli, "CHILD_STOP_SECONDS", 1)
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                              "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        cli._stop_child(child)
        assert child.returncode == -signal.SIGKILL
        assert "did not end within 1 s of SIGTERM: killed" in capsys.readouterr().err
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
