"""Failure signatures (dashboard.failures): failed runs grouped by their masked last error line."""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
import uuid

import pytest
from builders import ingest, write_host_spool

from dashboard import queries
from dashboard.components.runs_grid import RunsQuery
from dashboard.failures import NO_ERROR_LINE, failure_runs, failure_signatures, mask
from dashboard.formatting import utcnow
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.queries import RunFilter
from dashboard.spool import events_dir, format_timestamp, log_path

# Five ways to fail, each with what changes from one failure to the next.
TEMPLATES = (
    lambda r: f"{r.time()} ERROR could not connect to db-{r.n(99)}.internal:{r.n(9999)} after {r.n(9)} tries "
              f"(request {uuid.UUID(int=r.n(2**128))})",
    lambda r: f"Error: ENOENT: no such file or directory, open '/var/lib/app/cache/{r.hex()}.json'",
    lambda r: f'FATAL: password authentication failed for user "svc_{r.n(9999)}"',
    lambda r: f"panic: runtime error: index out of range [{r.n(50)}] with length {r.n(50)} at 0x{r.hex()}",
    lambda r: f"E   AssertionError: /home/ci/build-{r.n(999)}/tests/test_x.py:{r.n(500)} assert {r.n(99)} == {r.n(99)}",
)
SIGNATURES = (
    "<time> ERROR could not connect to db-<n>.internal:<n> after <n> tries (request <id>)",
    "Error: ENOENT: no such file or directory, open '…'",
    'FATAL: password authentication failed for user "…"',
    "panic: runtime error: index out of range [<n>] with length <n> at <hex>",
    "E AssertionError: <path>:<n> assert <n> == <n>",
)


class Values(random.Random):
    def n(self, top: int) -> int:
        return self.randrange(top)

    def hex(self) -> str:
        return f"{self.getrandbits(48):012x}"

    def time(self) -> str:
        return format_timestamp(dt.datetime(2026, 11, 1) + dt.timedelta(seconds=self.n(10**6)))


def test_each_template_masks_to_one_signature():
    values = Values(20)
    for template, signature in zip(TEMPLATES, SIGNATURES):
        assert set(mask([template(values) for _ in range(50)])) == {signature}


def write_failures(spool, now: dt.datetime, count: int, seed: int = 20) -> dict[str, int]:
    """`count` failed runs in the last 24 h, each failing one of TEMPLATES's ways, with noise around
    the error line; plus failures of the day before (only of the first way) and successes. Returns
    how many runs of the last 24 h failed each way, by signature."""
    values, expected = Values(seed), dict.fromkeys(SIGNATURES, 0)
    events_dir(spool).mkdir(parents=True, exist_ok=True)
    with open(events_dir(spool) / "runs.jsonl", "w", encoding="utf-8") as events:
        def run(run_id: str, status: str, ended: dt.datetime, stderr: str, stdout: str = "") -> None:
            for state, at in (("RUNNING", ended - dt.timedelta(seconds=30)), (status, ended)):
                events.write(json.dumps({"kind": "status", "run_id": run_id, "task": f"Task_{values.n(7)}",
                                         "status": state, "ts": format_timestamp(at), "agent": f"agent-{values.n(3)}",
                                         "message": "exit code 1" if state == "FAILED" else None}) + "\n")
            for stream, text in (("stderr", stderr), ("stdout", stdout)):
                if text:
                    path = log_path(spool, run_id, stream)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")

        for i in range(count):
            way = values.n(len(TEMPLATES))
            expected[SIGNATURES[way]] += 1
            ended = now - dt.timedelta(seconds=values.n(23 * 3600) + 60)
            stderr = (f"starting step {values.n(100)}\n{TEMPLATES[way](values)}\n"
                      f"cleaning up {values.n(1000)} temporary files\n")  # the error line is not the last one
            # Some also print an error on stdout: stderr's wins.
            stdout = f"ERROR in the retry loop {values.n(10)}\n" if i % 7 == 0 else ""
            run(f"fail-{i}", "FAILED", ended, stderr, stdout)
        for i in range(50):  # the day before: only the first way
            run(f"old-{i}", "FAILED", now - dt.timedelta(hours=30), TEMPLATES[0](values) + "\n")
        for i in range(100):  # successes say ERROR too, and are no failure
            run(f"ok-{i}", "SUCCESS", now - dt.timedelta(hours=1), TEMPLATES[1](values) + "\n")
    return expected


@pytest.fixture(scope="module")
def failures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("failures")
    now = utcnow()
    expected = write_failures(folder / "spool", now, 10_000)
    index = ingest(folder)
    yield index, now, expected
    index.close()


def test_ten_thousand_failures_of_five_templates_make_exactly_five_groups(failures):
    index, now, expected = failures
    groups = failure_signatures(index, RunFilter(since=dt.timedelta(hours=24)), now=now)
    print("\n" + groups[["signature", "runs", "new"]].to_string())
    assert dict(zip(groups["signature"], groups["runs"])) == expected
    assert groups["runs"].tolist() == sorted(groups["runs"], reverse=True)
    new = dict(zip(groups["signature"], groups["new"]))
    assert not new[SIGNATURES[0]] and all(new[s] for s in SIGNATURES[1:]), "only the first way failed the day before"
    first = groups.set_index("signature").loc[SIGNATURES[0]]
    assert first["example"].startswith("20") and "could not connect" in first["example"]
    assert first["first_seen"] <= first["last_seen"] and len(first["run_ids"]) == 100
    assert set(first["agents"]) <= {"agent-0", "agent-1", "agent-2"} and first["tasks"]


def test_a_filter_narrows_the_groups_and_all_time_has_no_new(failures):
    index, now, expected = failures
    everything = failure_signatures(index, now=now)
    assert everything.set_index("signature")["runs"][SIGNATURES[0]] == expected[SIGNATURES[0]] + 50
    assert everything["new"].isna().all()
    one_task = failure_signatures(index, RunFilter(task_text="task_3", since=dt.timedelta(hours=24)), now=now)
    assert 0 < one_task["runs"].sum() < sum(expected.values())
    assert all(tasks == ["Task_3"] for tasks in one_task["tasks"])
    assert failure_signatures(index, RunFilter(statuses=("SUCCESS",)), now=now).empty


def test_a_signatures_key_names_exactly_its_runs_and_filters_the_grid_to_them(failures):
    index, now, expected = failures
    day = RunFilter(since=dt.timedelta(hours=24))
    groups = failure_signatures(index, day, now=now)
    assert groups["key"].str.fullmatch(r"[0-9a-f]{12}").all() and groups["key"].is_unique
    for group in groups.itertuples():
        signature, run_ids = failure_runs(index, day, group.key, now=now)
        assert signature == group.signature and len(run_ids) == expected[group.signature]
        assert set(group.run_ids) <= run_ids and all(run_id.startswith("fail-") for run_id in run_ids)
        only = RunFilter(since=day.since, run_ids=run_ids)
        assert queries.count_runs(index, only, now) == len(run_ids)
    assert failure_runs(index, day, "0" * 12, now=now) == (None, frozenset())
    assert queries.count_runs(index, RunFilter(run_ids=frozenset()), now) == 0


def test_the_grids_failure_is_a_key_in_its_url():
    query = RunsQuery()
    assert query.from_url({"failure": "0123456789ab", "since": "3d"}) == []
    assert query.to_url() == {"since": "3d", "failure": "0123456789ab"} and query.filtered
    bad = RunsQuery()
    assert bad.from_url({"failure": "<script>", "group": "etl"}) == [
        "ignored failure='<script>' from the URL: use a failure signature's key (12 hexadecimal digits, from the "
        "runs page's Failure signatures)"]
    assert bad.failure == "" and bad.group == "etl"


def test_a_failure_without_an_error_line_is_grouped_by_its_message(tmp_path):
    now = utcnow()
    spool = tmp_path / "spool"
    events_dir(spool).mkdir(parents=True)
    lines = []
    for i, (status, message) in enumerate([("FAILED", "exit code 137"), ("FAILED", "exit code 2"),
                                           ("TERMINATED", None)]):
        lines.append({"kind": "status", "run_id": f"r-{i}", "task": "T", "status": status,
                      "ts": format_timestamp(now - dt.timedelta(minutes=i + 1)), "message": message})
    (events_dir(spool) / "e.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    for run_id, stream in (("r-0", "stdout"), ("r-1", "stderr")):  # logs, but no error-looking line in them
        log_path(spool, run_id, stream).parent.mkdir(parents=True, exist_ok=True)
        log_path(spool, run_id, stream).write_text("step 1 of 2 done\nstep 2 of 2 done\n", encoding="utf-8")
    index = ingest(tmp_path)
    try:
        groups = failure_signatures(index, RunFilter(since=dt.timedelta(hours=1)), now=now)
    finally:
        index.close()
    assert dict(zip(groups["signature"], groups["runs"])) == {"exit code <n>": 2, NO_ERROR_LINE: 1}
    printed = subprocess.run([sys.executable, "-m", "dashboard.cli", "failures", "--since", "1h", "--json",
                              "--spool", str(spool), "--index", str(tmp_path / "index.duckdb")],
                             capture_output=True, text=True, timeout=120, check=True)
    records = json.loads(printed.stdout)
    assert [(r["signature"], r["runs"], r["run_ids"]) for r in records] == [
        ("exit code <n>", 2, ["r-0", "r-1"]), (NO_ERROR_LINE, 1, ["r-2"])]
    assert all(r["new"] is True and r["tasks"] == ["T"] for r in records)


@pytest.mark.lake
def test_a_lake_groups_failures_as_a_local_index_does(lake, tmp_path):
    write_host_spool(tmp_path / "spool", "a", range(30), lines=5)
    local, writer, reader = ingest(tmp_path), Index(None, lake=lake, host="a"), Index(None, lake=lake)
    try:
        Ingestor(writer, tmp_path / "spool").catch_up()
        now = utcnow()
        month = RunFilter(since=dt.timedelta(days=30))
        groups = [failure_signatures(index, month, now=now)[["signature", "key", "runs"]] for index in (local, reader)]
        assert groups[0]["runs"].sum() == 10 and groups[0].to_dict("records") == groups[1].to_dict("records")
        key = groups[0]["key"].iloc[0]
        assert failure_runs(reader, RunFilter(), key, now=now) == failure_runs(local, RunFilter(), key, now=now)
    finally:
        for index in (local, writer, reader):
            index.close()


def test_the_error_line_is_stderr_s_last_else_stdout_s_however_long_the_logs_and_tails_are_read_first(
        tmp_path, monkeypatch):
    """Each stream's last TAIL_LINES are read first; a run they cannot settle (no error line in a
    stderr cut short, say, or none in either tail) is read whole, and gets the same line as if all
    had been read at once."""
    from dashboard import failures

    tail, now, spool = failures.TAIL_LINES, utcnow(), tmp_path / "spool"

    def lines(count: int, errors: dict[int, str]) -> str:
        return "".join(errors.get(n, f"step {n} done") + "\n" for n in range(1, count + 1))

    runs = {  # run: (stderr, stdout, its error line)
        "in-stderr-tail": (lines(500, {10: "ERROR alpha", 480: "ERROR bravo"}), lines(3, {3: "ERROR charlie"}),
                           "ERROR bravo"),
        "early-in-stderr": (lines(500, {10: "ERROR delta"}), lines(500, {500: "ERROR echo"}), "ERROR delta"),
        "early-in-stdout": (lines(500, {}), lines(500, {5: "ERROR foxtrot"}), "ERROR foxtrot"),
        "in-stdout-tail": (lines(3, {}), lines(500, {490: "ERROR golf"}), "ERROR golf"),
        "nowhere": (lines(500, {}), lines(500, {}), "exit code 1"),
        "first-of-tail-plus-one": (lines(tail + 1, {1: "ERROR hotel"}), "", "ERROR hotel"),
        "first-of-a-whole-tail": (lines(tail, {1: "ERROR india"}), lines(tail + 1, {tail + 1: "ERROR juliet"}),
                                  "ERROR india"),
    }
    events_dir(spool).mkdir(parents=True)
    with open(events_dir(spool) / "e.jsonl", "w", encoding="utf-8") as events:
        for n, (run_id, (stderr, stdout, _line)) in enumerate(runs.items()):
            events.write(json.dumps({"kind": "status", "run_id": run_id, "task": "T", "status": "FAILED",
                                     "ts": format_timestamp(now - dt.timedelta(minutes=n + 1)),
                                     "message": "exit code 1"}) + "\n")
            for stream, text in (("stderr", stderr), ("stdout", stdout)):
                if text:
                    log_path(spool, run_id, stream).parent.mkdir(parents=True, exist_ok=True)
                    log_path(spool, run_id, stream).write_text(text, encoding="utf-8")
    read_whole: list[set[str]] = []
    real = failures._lines_and_signatures
    monkeypatch.setattr(failures, "_lines_and_signatures", lambda runs, emphasis, tail, scan: (
        read_whole.append({run[0] for run in runs}) if tail is None else None) or real(runs, emphasis, tail, scan))
    index = ingest(tmp_path)
    try:
        found = failures.signatures_of(index, runs)
        assert {run_id: line for run_id, (line, _signature) in found.items()} == {
            run_id: line for run_id, (_stderr, _stdout, line) in runs.items()}
        assert set().union(*read_whole) == {"early-in-stderr", "early-in-stdout", "nowhere", "first-of-tail-plus-one"}
        read_whole.clear()
        groups = failure_signatures(index, RunFilter(since=dt.timedelta(hours=1)), now=now)  # (its memo's way)
        assert {run_ids[0]: example for run_ids, example in zip(groups["run_ids"], groups["example"])} == {
            run_id: line for run_id, (_stderr, _stdout, line) in runs.items()}
        assert set().union(*read_whole) == {"early-in-stderr", "early-in-stdout", "nowhere", "first-of-tail-plus-one"}
    finally:
        index.close()
