"""The ingestor on real spool files and a real DuckDB file: exactly once, order-independent, robust."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading

import pytest
from builders import ingest

from dashboard import queries
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter, format_timestamp

T0 = dt.datetime(2026, 11, 28, 12, 0, 0)


def status_event(run_id, status, seconds, task="Generate_Invoice", **extra):
    return {"kind": "status", "run_id": run_id, "task": task, "status": status,
            "ts": format_timestamp(T0 + dt.timedelta(seconds=seconds)), "agent": "agent-1",
            "adhoc": False, **extra}


LIFECYCLES = {
    "r-ok": ["IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING", "SUCCESS"],
    "r-fail": ["IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING", "FAILED"],
    "r-run": ["IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING"],
    "r-term": ["TRIGGER", "STARTED", "RUNNING", "TERMINATED"],
}


def lifecycle_events():
    events = []
    for n, (run_id, statuses) in enumerate(LIFECYCLES.items()):
        for i, status in enumerate(statuses):
            extra = {"exit_code": 0 if status == "SUCCESS" else 2} if status in ("SUCCESS", "FAILED") else {}
            events.append(status_event(run_id, status, n * 100 + i, **extra))
    return events


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        for line in lines:
            handle.write((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n")


def runs_table(index):
    return index.query("SELECT * EXCLUDE (updated) FROM runs ORDER BY run_id")


def test_out_of_order_and_duplicated_events_give_the_same_runs(tmp_path):
    events = lifecycle_events()
    write_lines(tmp_path / "a" / "spool" / "events" / "in-order.jsonl", events)
    shuffled = events + events[::2]
    random.Random(7).shuffle(shuffled)
    half = len(shuffled) // 2  # spread over two writers' files as well
    write_lines(tmp_path / "b" / "spool" / "events" / "w1.jsonl", shuffled[:half])
    write_lines(tmp_path / "b" / "spool" / "events" / "w2.jsonl", shuffled[half:])

    in_order, scrambled = ingest(tmp_path / "a"), ingest(tmp_path / "b")

    expected = runs_table(in_order)
    assert expected.set_index("run_id")["status"].to_dict() == {
        "r-ok": "SUCCESS", "r-fail": "FAILED", "r-run": "RUNNING", "r-term": "TERMINATED"}
    assert runs_table(scrambled).equals(expected)
    assert scrambled.counts()["runs"] == 4
    transitions = scrambled.query("SELECT count(*) AS n FROM transitions")["n"][0]
    assert transitions == len(events)  # duplicates counted once



@pytest.mark.parametrize("bulk", [True, False], ids=["parsed in bulk", "parsed line by line"])
def test_of_an_event_read_twice_the_first_line_read_counts(tmp_path, bulk):
    """Lines of one run, status and time are one event: the earliest line of a batch is kept, and
    a later batch's copy never replaces the one already indexed, whatever else the copies say."""
    padding = [status_event(f"r-pad-{n}", "IDLE", n) for n in range(300 if bulk else 0)]  # a chunk parsed in bulk
    first = [status_event("r-1", "RUNNING", 1, message="first"), status_event("r-1", "RUNNING", 1, message="second"),
             status_event("r-1", "FAILED", 5, exit_code=1, message="failed first"), *padding,
             status_event("r-1", "FAILED", 5, exit_code=2, message="failed second", adhoc=True)]
    write_lines(tmp_path / "spool" / "events" / "w.jsonl", first)
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")

    def run_as_kept():  # (computed from its events as kept, each once: no copy says ad hoc)
        run = queries.run(index, "r-1")
        return run["status"], run["message"], run["exit_code"], run["adhoc"]

    ingestor.catch_up()
    assert run_as_kept() == ("FAILED", "failed first", 1, False)  # a run new to the index
    write_lines(tmp_path / "spool" / "events" / "w.jsonl",
                [status_event("r-1", "RUNNING", 1, message="third", adhoc=True)])
    ingestor.catch_up()
    with index.cursor() as cur:
        kept = cur.execute("SELECT status, message, exit_code FROM transitions WHERE run_id = 'r-1' "
                           "ORDER BY ts").fetchall()
    assert kept == [("RUNNING", "first", None), ("FAILED", "failed first", 1)]
    assert run_as_kept() == ("FAILED", "failed first", 1, False)  # a run it held
    index.close()

def test_an_older_running_event_never_reopens_a_finished_run(tmp_path):
    events = [status_event("r-1", "RUNNING", 1), status_event("r-1", "SUCCESS", 5, exit_code=0)]
    write_lines(tmp_path / "spool" / "events" / "w.jsonl", events)
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    ingestor.catch_up()
    write_lines(tmp_path / "spool" / "events" / "w.jsonl", [status_event("r-1", "RUNNING", 3)])
    ingestor.catch_up()

    run = queries.run(index, "r-1")
    assert run["status"] == "SUCCESS"
    assert run["finished"] == T0 + dt.timedelta(seconds=5)
    assert run["started"] == T0 + dt.timedelta(seconds=1)
    assert run["exit_code"] == 0


def test_times_without_zone_mean_utc_and_zones_are_converted(tmp_path):
    events = [dict(status_event("r-1", "RUNNING", 0), ts="2026-11-28T14:00:00+02:00"),
              dict(status_event("r-2", "RUNNING", 0), ts="2026-11-28T12:00:00")]
    write_lines(tmp_path / "spool" / "events" / "w.jsonl", events)
    index = ingest(tmp_path)
    assert queries.run(index, "r-1")["started"] == queries.run(index, "r-2")["started"] == T0


def test_a_torn_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "spool" / "events" / "w.jsonl"
    write_lines(path, [status_event("r-1", "RUNNING", 0)])
    torn = json.dumps(status_event("r-1", "SUCCESS", 9, exit_code=0)).encode()
    with open(path, "ab") as handle:
        handle.write(torn[:25])
    log = tmp_path / "spool" / "logs" / "r-1" / "stdout.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"first\nsec")

    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    ingestor.catch_up()
    assert queries.run(index, "r-1")["status"] == "RUNNING"
    assert queries.log_page(index, "r-1", "stdout", 1)["text"].tolist() == ["first"]
    assert index.counts()["ingest_errors"] == 0

    with open(path, "ab") as handle:
        handle.write(torn[25:] + b"\n")
    with open(log, "ab") as handle:
        handle.write(b"ond\n")
    ingestor.catch_up()
    assert queries.run(index, "r-1")["status"] == "SUCCESS"
    assert queries.log_page(index, "r-1", "stdout", 1)["text"].tolist() == ["first", "second"]


BAD_LINES = [
    (b"this is not json", "not JSON"),
    (b'["a", "list"]', "must be a JSON object"),
    (b'{"kind": "metric", "value": 1}', "unknown kind"),
    (json.dumps(status_event("r-1", "PAUSED", 0)).encode(), "unknown status"),
    (json.dumps(status_event("../../etc", "RUNNING", 0)).encode(), "bad run_id"),
    (json.dumps(status_event("a/b", "RUNNING", 0)).encode(), "bad run_id"),
    (json.dumps(status_event("x" * 129, "RUNNING", 0)).encode(), "bad run_id"),
    (json.dumps({k: v for k, v in status_event("r-1", "RUNNING", 0).items() if k != "task"}).encode(),
     "missing field 'task'"),
    (json.dumps({k: v for k, v in status_event("r-1", "RUNNING", 0).items() if k != "ts"}).encode(),
     "timestamp"),
    (json.dumps(dict(status_event("r-1", "RUNNING", 0), ts="yesterday")).encode(), "not an ISO 8601"),
    (json.dumps(dict(status_event("r-1", "RUNNING", 0), exit_code="3")).encode(), "exit_code"),
    (json.dumps(dict(status_event("r-1", "FAILED", 0), exit_code=2**40)).encode(), "exit_code"),
    (b'{"kind": "status", "task": "\xff\xfe"}', "not valid UTF-8"),
    (b'{"kind": "task"}', "missing field 'task'"),
    (b'{"kind": "task", "task": "A", "depends_on": "B"}', "depends_on"),
]


def test_every_bad_line_is_recorded_and_skipped_and_the_good_lines_around_it_kept(tmp_path):
    path = tmp_path / "spool" / "events" / "w.jsonl"
    lines, good = [], 0
    for i, (bad, _) in enumerate(BAD_LINES):
        lines += [json.dumps(status_event(f"r-{i}", "RUNNING", i)).encode(), bad]
        good += 1
    write_lines(path, lines)

    index = ingest(tmp_path)

    assert index.counts()["runs"] == good
    errors = index.query('SELECT file, "offset", reason FROM ingest_errors ORDER BY "offset"')
    assert len(errors) == len(BAD_LINES)
    content = path.read_bytes()
    for (bad, expected_reason), (_, error) in zip(BAD_LINES, errors.iterrows()):
        assert error["file"] == "events/w.jsonl"
        assert content[error["offset"]:].startswith(bad), "the offset points at the bad line"
        assert expected_reason in error["reason"]


def test_a_restart_after_a_partial_ingest_neither_loses_nor_doubles(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("A", "g")
    for i in range(50):
        writer.status(f"r-{i}", "A", "RUNNING")
        writer.append_log(f"r-{i}", "stdout", "".join(f"line {n}\n" for n in range(i)))
    index_path = tmp_path / "index.duckdb"
    first = Index(index_path)
    Ingestor(first, tmp_path / "spool").catch_up()
    first.close()
    for i in range(50):
        writer.status(f"r-{i}", "A", "SUCCESS", exit_code=0)
        writer.append_log(f"r-{i}", "stdout", "last\n")

    again = Index(index_path)
    Ingestor(again, tmp_path / "spool").catch_up()
    Ingestor(again, tmp_path / "spool").catch_up()

    assert again.counts()["runs"] == 50
    assert again.counts()["log_lines"] == sum(range(50)) + 50
    statuses = again.query("SELECT DISTINCT status FROM runs")["status"].tolist()
    assert statuses == ["SUCCESS"]
    numbering = again.query("SELECT run_id, count(*) AS n, max(line_no) AS last FROM log_lines GROUP BY run_id")
    assert (numbering["n"] == numbering["last"]).all(), "line numbers have no gaps or repeats"


def test_a_later_task_definition_replaces_the_earlier(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("Send_Email_Invoice", "billing", ["Fetch_Orders"])
    writer.define_task("Send_Email_Invoice", "billing", ["Generate_Invoice"], "mail the invoice")
    index = ingest(tmp_path)
    tasks = queries.tasks(index)
    assert len(tasks) == 1
    assert list(tasks["depends_on"][0]) == ["Generate_Invoice"]
    assert tasks["description"][0] == "mail the invoice"


@pytest.mark.parametrize("text", ["%", "_", "'", ".*", "'; DROP TABLE runs; --"])
def test_task_search_treats_text_literally(tmp_path, text):
    writer = SpoolWriter(tmp_path / "spool")
    writer.status("r-1", f"load{text}table", "RUNNING")
    writer.status("r-2", "plain", "RUNNING")
    index = ingest(tmp_path)
    found = queries.runs_page(index, queries.RunFilter(task_text=text))
    assert found["run_id"].tolist() == ["r-1"]
    assert index.counts()["runs"] == 2


def test_odd_but_valid_text_is_kept_as_text(tmp_path):
    odd = ["nul\u0000inside", "<img src=x onerror=alert(1)>", "'; DROP TABLE runs; --", "emoji 🚀", "x" * 256]
    write_lines(tmp_path / "spool" / "events" / "w.jsonl",
                [status_event(f"r-{i}", "RUNNING", i, task=name, agent=name, group=name) for i, name in enumerate(odd)])
    index = ingest(tmp_path)
    runs = queries.runs_page(index, limit=10, sort="trigger_time", descending=False)
    assert runs["task"].tolist() == odd and runs["agent"].tolist() == odd and runs["grp"].tolist() == odd
    assert index.counts()["ingest_errors"] == 0


def test_events_of_the_same_millisecond_follow_the_lifecycle_order(tmp_path):
    same = format_timestamp(T0)
    events = [dict(status_event("r-1", status, 0), ts=same) for status in ("ACTIVE", "IDLE")]
    events += [dict(status_event("r-2", status, 0), ts=same) for status in ("STARTED", "TRIGGER")]
    write_lines(tmp_path / "spool" / "events" / "w.jsonl", events)
    index = ingest(tmp_path)
    assert queries.run(index, "r-1")["status"] == "ACTIVE"
    assert queries.run(index, "r-2")["status"] == "STARTED"


# ---- a batch committed while the next one is read ---------------------------------------------


def batched_spool(spool) -> None:
    """Events of 40 runs over two files with junk lines between them, and logs (one coloured, one
    ending without a newline on a finished run), in files much bigger than the chunks read below."""
    writer = SpoolWriter(spool, "test")
    for n in range(40):
        for i, status in enumerate(LIFECYCLES["r-fail" if n % 5 == 0 else "r-ok"]):
            extra = {"exit_code": 2 if status == "FAILED" else 0} if status in ("SUCCESS", "FAILED") else {}
            write_lines(spool / "events" / f"{'ab'[n % 2]}.jsonl", [status_event(f"r-{n:02d}", status, n * 10 + i, **extra)])
        write_lines(spool / "events" / "a.jsonl", [b"not json", b"{", b"[1, 2]"])
    for n in range(0, 40, 4):
        writer.append_log(f"r-{n:02d}", "stdout", "".join(f"\x1b[32mINFO\x1b[0m step {k} of r-{n:02d}\n" if n % 8 == 0
                                                         else f"step {k} of r-{n:02d}\n" for k in range(300)))
    writer.append_log("r-04", "stderr", "Traceback (most recent call last):\nValueError: no\nexit 1")


def index_content(index) -> tuple:
    return (runs_table(index).astype(str).to_dict("records"),
            index.query("SELECT run_id, stream, line_no, text FROM log_lines ORDER BY ALL").to_dict("records"),
            index.query('SELECT file, "offset", reason FROM ingest_errors ORDER BY ALL').to_dict("records"))


def bad_lines_counted(errors) -> int:
    """The bad lines ingest errors account for: one each, or the N of 'N more bad lines like this'."""
    return sum(int(error["reason"].split(" ")[0].replace(",", "")) if "more bad lines" in error["reason"] else 1
               for error in errors)


@pytest.fixture
def small_batches(monkeypatch):
    """Chunks of 4 KB and commits every 100 lines: the spool above takes dozens of batches."""
    from dashboard import ingest as ingest_module
    monkeypatch.setattr(ingest_module, "READ_CHUNK", 4096)
    monkeypatch.setattr(ingest_module, "BATCH_LINES", 100)


def first_commit_waits_for_the_next_read(monkeypatch, index) -> tuple[threading.Event, list]:
    """Hold the first commit until the ingestor reads on (10 s at most); return the event of that
    read and the list of batches committed (their files)."""
    applied, first_commit, read_meanwhile = [], threading.Event(), threading.Event()
    apply, read = index.apply, Ingestor._read

    def apply_once_the_reader_went_on(batch):
        if not applied:
            first_commit.set()
            read_meanwhile.wait(10)
        applied.append(sorted(batch.offsets))
        return apply(batch)

    def watched_read(self, rel, batch):
        if first_commit.is_set():
            read_meanwhile.set()
        return read(self, rel, batch)
    monkeypatch.setattr(index, "apply", apply_once_the_reader_went_on)
    monkeypatch.setattr(Ingestor, "_read", watched_read)
    return read_meanwhile, applied


def test_a_batch_commits_while_the_next_is_read_and_the_index_ends_as_one_batch_makes_it(tmp_path, monkeypatch):
    batched_spool(tmp_path / "spool")
    reference = ingest(tmp_path, "reference.duckdb")  # one batch: everything fits in it
    expected = index_content(reference)
    reference.close()
    from dashboard import ingest as ingest_module
    monkeypatch.setattr(ingest_module, "READ_CHUNK", 4096)
    monkeypatch.setattr(ingest_module, "BATCH_LINES", 100)
    index = Index(tmp_path / "index.duckdb")
    read_meanwhile, applied = first_commit_waits_for_the_next_read(monkeypatch, index)
    try:
        added = Ingestor(index, tmp_path / "spool").catch_up()
        content = index_content(index)
        print(f"\n{len(applied)} batches; added {added}")
        assert read_meanwhile.is_set(), "the next batch was read while the first one committed"
        assert len(applied) > 10
        assert content[:2] == expected[:2], "the runs and log lines one batch gives"
        assert bad_lines_counted(content[2]) == bad_lines_counted(expected[2]) == 120
    finally:
        index.close()


def test_a_files_bad_lines_listed_one_by_one_count_those_of_the_batch_committing(tmp_path, monkeypatch):
    """ERROR_SAMPLES of a file's bad lines are listed, whatever batches they fall in: those of the
    batch being committed count while the next batch reads the same file."""
    from dashboard import bad_lines, ingest as ingest_module
    write_lines(tmp_path / "spool" / "events" / "junk.jsonl",
                [line for n in range(200) for line in (status_event(f"r-{n}", "RUNNING", n), b"not json")])
    monkeypatch.setattr(ingest_module, "READ_CHUNK", 2048)
    monkeypatch.setattr(ingest_module, "BATCH_LINES", 10)
    monkeypatch.setattr(bad_lines, "ERROR_SAMPLES", 7)
    index = Index(tmp_path / "index.duckdb")
    read_meanwhile, applied = first_commit_waits_for_the_next_read(monkeypatch, index)
    try:
        Ingestor(index, tmp_path / "spool").catch_up()
        errors = index.query('SELECT file, "offset", reason FROM ingest_errors ORDER BY "offset"').to_dict("records")
        listed = [error for error in errors if "more bad lines like this" not in error["reason"]]
        print(f"\n{len(applied)} batches, {len(errors)} ingest errors, {len(listed)} listed one by one")
        assert read_meanwhile.is_set() and len(applied) > 2
        assert len(listed) == 7
        assert bad_lines_counted(errors) == 200 and index.counts()["runs"] == 200
    finally:
        index.close()


@pytest.mark.parametrize("failing", ["commit", "read"])
def test_a_step_failing_while_a_batch_commits_loses_and_doubles_nothing(tmp_path, monkeypatch, small_batches, failing):
    """A commit failing while the next batch is read (that batch is dropped and read again), or the
    read failing while a batch commits (that batch is in the index: the ingestor must know it)."""
    batched_spool(tmp_path / "spool")
    index = Index(tmp_path / "index.duckdb")
    apply, read, calls = index.apply, Ingestor._read, {"apply": 0}

    def failing_apply(batch):
        calls["apply"] += 1
        if failing == "commit" and calls["apply"] == 1:  # (its batch holds the first files read again)
            raise OSError("No space left on device")
        return apply(batch)

    def failing_read(self, rel, batch):
        if failing == "read" and self._committing is not None:
            raise OSError("Input/output error")
        return read(self, rel, batch)
    monkeypatch.setattr(index, "apply", failing_apply)
    monkeypatch.setattr(Ingestor, "_read", failing_read)
    ingestor = Ingestor(index, tmp_path / "spool")
    try:
        with pytest.raises(OSError):
            ingestor.catch_up()
        partial = index.counts()
        assert ingestor._offsets == index.load_offsets(), "where it goes on from is what the index holds"
        monkeypatch.setattr(Ingestor, "_read", read)
        monkeypatch.setattr(index, "apply", apply)
        ingestor.catch_up()  # the same ingestor goes on from what it knows was committed
        content = index_content(index)
    finally:
        index.close()
    reference = ingest(tmp_path, "reference.duckdb")
    try:
        print(f"\nafter the failed step: {partial}; after the next: {reference.counts()}")
        assert (partial["log_lines"] > 0) == (failing == "read"), "the read failed once its batch was committing"
        assert content[:2] == index_content(reference)[:2], "the runs and log lines of an ingest that did not fail"
        assert bad_lines_counted(content[2]) == 120
    finally:
        reference.close()


def test_a_catch_up_numbers_and_stores_the_logs_of_its_run_folders_oldest_first(tmp_path):
    """The file system lists run folders in no useful order; a catch-up of a spool's history takes
    them in the order they were made, as a live ingest would have, so that reads of recent runs'
    logs (a fleet search of the last day, say) skip the row groups of older ones."""
    import os

    from dashboard.spool import logs_dir

    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "test")
    names = [f"run-{n:02d}" for n in range(12)]
    for name in names:
        writer.append_log(name, "stdout", f"{name} says hello\n")
        writer.append_log(name, "stderr", f"{name} says goodbye\n")
    writer.close()
    oldest_first = random.Random(5).sample(names, len(names))  # neither by name nor as written
    made = 1_700_000_000 * 10**9
    for age, name in enumerate(oldest_first):
        os.utime(logs_dir(spool) / name, ns=(made + age * 10**9, made + age * 10**9))
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, spool)
    ingestor.spool_files()  # listed once before, as the command line's progress bar does
    ingestor.catch_up()
    try:
        streams = index.query("SELECT run_id, stream FROM log_streams ORDER BY log_id")
        stored = index.query("SELECT s.run_id FROM log_text t JOIN log_streams s USING (log_id) "
                             "ORDER BY t.rowid")["run_id"].tolist()
    finally:
        index.close()
    assert streams["run_id"].drop_duplicates().tolist() == oldest_first
    assert list(dict.fromkeys(stored)) == oldest_first
