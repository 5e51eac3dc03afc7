"""The built-in runner with real subprocesses and a real spool: lifecycles, logs, slots, terminate, adhoc."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from dashboard.execution import pid_file, terminate_marker
from dashboard.runner import RunnerError, Scheduler, run_adhoc, terminate
from dashboard.workflow import load_workflow
from helpers import (
    last_event, process_gone, process_group_gone, read_events, read_log, run_events, statuses, wait_until,
)

REPO = Path(__file__).resolve().parents[1]
SCHEDULED_LIFECYCLE = ["IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING"]


@pytest.fixture
def spool(tmp_path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def make_scheduler(tmp_path, spool):
    """Build a Scheduler over a workflow written to a YAML file; every one made is stopped afterwards."""
    made = []

    def make(tasks: dict, agents: dict | None = None, schedule: str = "every 1h", **options) -> Scheduler:
        folder = tmp_path / "work"
        folder.mkdir(exist_ok=True)
        data = {"name": "test", "schedule": schedule, "agents": agents or {"agent-1": 2, "agent-2": 2},
                "tasks": {name: {"group": "g", **spec} for name, spec in tasks.items()}}
        (folder / "flow.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        scheduler = Scheduler(load_workflow(folder / "flow.yaml"), spool, **options)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.stop()


def running_pid(spool: Path, run_id: str) -> int:
    """The pid of a run's process once it is RUNNING, as its RUNNING event and pid file record it."""
    event = wait_until(lambda: last_event(spool, run_id, "RUNNING"), message=f"{run_id} RUNNING")
    pid = int(event["message"].removeprefix("pid "))
    assert int(pid_file(spool, run_id).read_text().split()[0]) == pid
    return pid


def test_failed_upstream_blocks_its_downstreams(make_scheduler, spool, tmp_path):
    scheduler = make_scheduler({
        "A": {"command": "echo about to fail >&2; exit 3"},
        "B": {"command": "touch ran-B", "depends_on": ["A"]},
        "C": {"command": "touch ran-C", "depends_on": ["B"]},
    })
    runs = scheduler.run_cycle()
    assert scheduler.wait(timeout=10)

    assert statuses(spool, runs["A"]) == [*SCHEDULED_LIFECYCLE, "FAILED"]
    failed = last_event(spool, runs["A"], "FAILED")
    assert failed["exit_code"] == 3
    assert "about to fail" in read_log(spool, runs["A"], "stderr")
    # A run that can no longer start ends at once, instead of staying ACTIVE for ever.
    for task in ("B", "C"):
        assert statuses(spool, runs[task]) == ["IDLE", "ACTIVE", "TERMINATED"]
        assert not (tmp_path / "work" / f"ran-{task}").exists()
    assert run_events(spool, runs["B"])[-1]["message"] == "upstream A failed"
    assert run_events(spool, runs["C"])[-1]["message"] == "upstream A failed (via B)"


def test_successful_chain_runs_in_order(make_scheduler, spool):
    scheduler = make_scheduler({
        "A": {"command": "echo from A", "description": "first"},
        "B": {"command": "echo from B", "depends_on": ["A"]},
    })
    runs = scheduler.run_cycle()
    assert scheduler.wait(timeout=10)

    events = read_events(spool)
    definitions = {e["task"]: e for e in events if e["kind"] == "task"}
    assert definitions["B"]["depends_on"] == ["A"] and definitions["A"]["description"] == "first"
    for task, run_id in runs.items():
        run = run_events(spool, run_id)
        assert [e["status"] for e in run] == [*SCHEDULED_LIFECYCLE, "SUCCESS"]
        assert [e["ts"] for e in run] == sorted(e["ts"] for e in run)
        assert all(e["adhoc"] is False and e["group"] == "g" and e["task"] == task for e in run)
        assert len({e["trigger_time"] for e in run_events(spool, runs["A"]) + run}) == 1
        assert {e["agent"] for e in run[3:]} == {"agent-1"}
        assert read_log(spool, run_id, "stdout") == f"from {task}\n"
    a_success = last_event(spool, runs["A"], "SUCCESS")
    b_trigger = last_event(spool, runs["B"], "TRIGGER")
    assert b_trigger["ts"] >= a_success["ts"]
    assert events.index(b_trigger) > events.index(a_success)


def test_output_reaches_the_spool_while_the_command_runs(make_scheduler, spool, tmp_path, monkeypatch):
    # No flush calls: the runner's PYTHONUNBUFFERED=1 must make the lines appear at once.
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    script = "import os, sys, time\nprint('first out')\nprint('first err', file=sys.stderr)\n" \
             "while not os.path.exists('go'):\n    time.sleep(0.01)\nprint('second out')\n"
    scheduler = make_scheduler({"Stream": {"command": "{python} stream.py"}})
    (tmp_path / "work" / "stream.py").write_text(script, encoding="utf-8")
    run_id = scheduler.run_cycle()["Stream"]

    wait_until(lambda: read_log(spool, run_id, "stdout") == "first out\n", message="first stdout line")
    wait_until(lambda: read_log(spool, run_id, "stderr") == "first err\n", message="first stderr line")
    assert statuses(spool, run_id)[-1] == "RUNNING"
    (tmp_path / "work" / "go").touch()
    assert scheduler.wait(timeout=10)
    assert read_log(spool, run_id, "stdout") == "first out\nsecond out\n"
    assert statuses(spool, run_id)[-1] == "SUCCESS"


def test_terminate_ends_the_whole_process_group(make_scheduler, spool, tmp_path):
    scheduler = make_scheduler({"Long": {"command": "sleep 30 & echo $! > child.pid; wait"}})
    run_id = scheduler.run_cycle()["Long"]
    pid = running_pid(spool, run_id)
    child = int(wait_until(lambda: (tmp_path / "work" / "child.pid").read_text().strip()
                           if (tmp_path / "work" / "child.pid").exists() else None))
    assert not process_gone(child)

    assert terminate(spool, run_id, grace=5) == f"run {run_id} terminated (SIGTERM)"
    assert scheduler.wait(timeout=10)
    end = run_events(spool, run_id)[-1]
    assert (end["status"], end["exit_code"], end["message"]) == ("TERMINATED", 143, "killed by SIGTERM on request")
    assert process_gone(pid) and process_gone(child) and process_group_gone(pid)
    assert not pid_file(spool, run_id).exists() and not terminate_marker(spool, run_id).exists()
    with pytest.raises(RunnerError, match=f"run {run_id} is not running here"):
        terminate(spool, run_id)
    with pytest.raises(RunnerError, match="bad run_id"):
        terminate(spool, "../etc")


def test_a_trapped_sigterm_still_ends_terminated_not_failed(make_scheduler, spool):
    scheduler = make_scheduler({"Trap": {"command": "trap 'exit 143' TERM; sleep 30 & wait"}})
    run_id = scheduler.run_cycle()["Trap"]
    running_pid(spool, run_id)
    terminate(spool, run_id)
    assert scheduler.wait(timeout=10)
    end = run_events(spool, run_id)[-1]
    assert (end["status"], end["exit_code"]) == ("TERMINATED", 143)
    assert end["message"] == "terminated on request; exited with code 143"


def test_adhoc_run_records_adhoc_events_output_and_exit_code(spool, capsys):
    code = run_adhoc(spool, [sys.executable, "-c", "print('hello from adhoc'); raise SystemExit(4)"])
    assert code == 4
    run_id = next(e["run_id"] for e in read_events(spool))
    assert run_id in capsys.readouterr().err
    run = run_events(spool, run_id)
    assert [e["status"] for e in run] == ["TRIGGER", "STARTED", "RUNNING", "FAILED"]
    assert all(e["adhoc"] is True and e["task"] == f"Adhoc_{Path(sys.executable).name}" for e in run)
    assert [e["agent"] for e in run] == [None, "adhoc", "adhoc", "adhoc"]
    assert run[-1]["exit_code"] == 4
    assert read_log(spool, run_id, "stdout") == "hello from adhoc\n"

    assert run_adhoc(spool, ["true"], agent="ops", task="Nightly_Fix") == 0
    fix = [e for e in read_events(spool) if e.get("task") == "Nightly_Fix"]
    assert [(e["status"], e["agent"]) for e in fix][-1] == ("SUCCESS", "ops")


def test_adhoc_missing_executable_fails_with_127(spool):
    assert run_adhoc(spool, ["no-such-program-for-taskdash"]) == 127
    run_id = next(e["run_id"] for e in read_events(spool))
    assert statuses(spool, run_id) == ["TRIGGER", "STARTED", "FAILED"]
    end = run_events(spool, run_id)[-1]
    assert end["exit_code"] == 127
    assert end["message"].startswith("cannot start 'no-such-program-for-taskdash': No such file")
    assert end["message"] in read_log(spool, run_id, "stderr")


def test_terminate_escalates_to_sigkill_when_sigterm_is_ignored(spool):
    codes = []
    command = ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"]
    adhoc = threading.Thread(target=lambda: codes.append(run_adhoc(spool, command)))
    adhoc.start()
    run_id = wait_until(lambda: next((e["run_id"] for e in read_events(spool) if e.get("status") == "RUNNING"), None))
    pid = running_pid(spool, run_id)
    assert terminate(spool, run_id, grace=0.3) == f"run {run_id} terminated (SIGKILL after 0.3 s)"
    adhoc.join(timeout=10)
    assert codes == [137]
    end = run_events(spool, run_id)[-1]
    assert (end["status"], end["exit_code"], end["message"]) == ("TERMINATED", 137, "killed by SIGKILL on request")
    assert process_group_gone(pid)


def test_terminate_records_the_end_itself_when_the_runner_is_gone(spool):
    code = f"from dashboard.runner import run_adhoc; run_adhoc({str(spool)!r}, ['sleep', '30'])"
    runner = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        run_id = wait_until(lambda: next((e["run_id"] for e in read_events(spool) if e.get("status") == "RUNNING"),
                                         None), message="adhoc sleep RUNNING")
        pid = running_pid(spool, run_id)
    finally:
        runner.kill()
        runner.wait()
    assert not process_gone(pid)  # it has its own session, so it outlives its runner

    terminate(spool, run_id, grace=5)
    end = run_events(spool, run_id)[-1]
    assert (end["status"], end["exit_code"], end["task"], end["adhoc"], end["agent"]) == \
        ("TERMINATED", 143, "Adhoc_sleep", True, "adhoc")
    assert f"its runner (pid {runner.pid}) had gone" in end["message"]
    assert process_group_gone(pid)
    assert not pid_file(spool, run_id).exists()


def test_a_busy_agent_slot_keeps_the_next_run_in_trigger(make_scheduler, spool):
    scheduler = make_scheduler({"A": {"command": "sleep 0.3"}, "B": {"command": "sleep 0.3"}}, agents={"solo": 1})
    runs = scheduler.run_cycle()
    assert scheduler.wait(timeout=10)
    first, second = sorted(runs.values(), key=lambda r: last_event(spool, r, "STARTED")["ts"])
    first_end = last_event(spool, first, "SUCCESS")
    assert last_event(spool, second, "TRIGGER")["ts"] < first_end["ts"]
    assert last_event(spool, second, "STARTED")["ts"] >= first_end["ts"]
    assert statuses(spool, second) == [*SCHEDULED_LIFECYCLE, "SUCCESS"]


def test_runs_go_to_the_agent_with_most_free_slots_ties_by_name(make_scheduler, spool):
    scheduler = make_scheduler({name: {"command": "sleep 0.2"} for name in ("X", "Y", "Z")},
                               agents={"b": 2, "a": 1})
    runs = scheduler.run_cycle()
    assert scheduler.wait(timeout=10)
    assert {task: last_event(spool, run_id, "STARTED")["agent"] for task, run_id in runs.items()} == \
        {"X": "b", "Y": "a", "Z": "b"}


def test_schedule_skips_tasks_still_in_flight_and_stop_terminates_everything(make_scheduler, spool):
    scheduler = make_scheduler({
        "Quick": {"command": "true"},
        "Slow": {"command": "sleep 30"},
        "After_Slow": {"command": "true", "depends_on": ["Slow"]},
    }, schedule="0.1", cycles=3)
    scheduler.start()
    quick_done = lambda: [e for e in read_events(spool) if e.get("task") == "Quick" and e.get("status") == "SUCCESS"]
    wait_until(lambda: len(quick_done()) == 3, timeout=30, message="three cycles of Quick")
    assert not scheduler.wait(timeout=0.2)  # Slow is still running
    scheduler.request_stop()
    assert scheduler.wait(timeout=1)

    scheduler.stop()
    runs = {}
    for event in read_events(spool):
        if event["kind"] == "status":
            runs.setdefault(event["task"], {})[event["run_id"]] = event
    assert len(runs["Quick"]) == 3
    assert len(runs["Slow"]) == len(runs["After_Slow"]) == 1
    (slow_end,), (after_end,) = runs["Slow"].values(), runs["After_Slow"].values()
    assert (slow_end["status"], slow_end["message"]) == ("TERMINATED", "killed by SIGTERM on request")
    assert (after_end["status"], after_end["message"]) == \
        ("TERMINATED", "the scheduler stopped before the run started")
    with pytest.raises(RunnerError, match="stopped"):
        scheduler.run_cycle()
