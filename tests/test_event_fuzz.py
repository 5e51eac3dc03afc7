"""Poisoned event lines (issue 13): thousands of random and mutated lines, with a fixed seed.

Each line is either indexed or exactly one ingest error at its byte offset, on the bulk path
(DuckDB's JSON functions, a chunk of valid UTF-8) and on the fallback path (Python, line by
line, a chunk holding invalid UTF-8) alike; the ingest never sticks; and what the index holds
equals what a slow reference reader, written here from the README's contract and nothing of
the package, makes of the same lines.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import subprocess
import sys

import pytest

from dashboard import bad_lines, event_lines
from dashboard.index import Index
from dashboard.ingest import READ_CHUNK, Ingestor

SEED = 1313
CASES = 4_000

# ---- the reference reader: the contract, restated line by line ---------------------------

STATUSES = ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING", "SUCCESS", "FAILED", "TERMINATED")
RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
NESTING = 64  # the README: arrays and objects nested deeper are an error
BIG = object()  # an integer too long to be any field's value


class Bad(Exception):
    pass


def _reject_constant(name):
    raise Bad(name)


class _Object(dict):
    """A JSON object whose depth counts every value given, a field given twice included."""

    def __init__(self, pairs):
        super().__init__(reversed(pairs))  # a field given twice: the first counts
        self.depth = 1 + max((_depth(value) for _, value in pairs), default=0)


def _depth(value) -> int:
    if isinstance(value, _Object):
        return value.depth
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _text(event: dict, name: str, limit: int, required: bool = False):
    value = event.get(name)
    if value is None:
        if required:
            raise Bad(name)
        return None
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise Bad(name)
    value.encode("utf-8")  # a lone surrogate raises
    return value


def _time(value) -> dt.datetime:
    if not isinstance(value, str) or not value:
        raise Bad("time")
    moment = dt.datetime.fromisoformat(value.strip())
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment


def reference(raw: bytes):
    """('blank',), ('error',), ('task', name) or ('status', run_id, status, ts)."""
    if not raw.strip():
        return ("blank",)
    if len(raw) >= READ_CHUNK:
        return ("error",)
    try:
        text = raw.decode("utf-8")
        if text.startswith("\ufeff"):
            text = text[1:]
        event = json.loads(text, parse_constant=_reject_constant,
                           parse_int=lambda digits: BIG if len(digits) > 40 else int(digits),
                           object_pairs_hook=_Object)
        if _depth(event) > NESTING or not isinstance(event, dict):
            raise Bad("shape")
        if event.get("kind") == "task":
            name = _text(event, "task", 256, required=True)
            _text(event, "group", 256)
            _text(event, "description", 4096)
            depends_on = event.get("depends_on") or []
            if not isinstance(depends_on, list) or not all(isinstance(d, str) and d for d in depends_on):
                raise Bad("depends_on")
            for upstream in depends_on:
                upstream.encode("utf-8")
            return ("task", name)
        if event.get("kind") == "status":
            run_id, status = event.get("run_id"), event.get("status")
            if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
                raise Bad("run_id")
            if not isinstance(status, str) or status not in STATUSES:
                raise Bad("status")
            _text(event, "task", 256, required=True)
            for name, limit in (("agent", 256), ("group", 256), ("message", 4096)):
                _text(event, name, limit)
            if not isinstance(event.get("adhoc", False), bool):
                raise Bad("adhoc")
            exit_code = event.get("exit_code")
            if exit_code is not None and (type(exit_code) is not int or not -2**31 <= exit_code < 2**31):
                raise Bad("exit_code")
            if event.get("trigger_time") is not None:
                _time(event["trigger_time"])
            return ("status", run_id, status, _time(event.get("ts")))
        raise Bad("kind")
    except (Bad, ValueError, RecursionError, UnicodeError, OverflowError):
        return ("error",)


# ---- the lines: valid ones, mutations of them, and noise ---------------------------------


def valid_event(rng: random.Random) -> dict:
    if rng.random() < 0.1:
        return {"kind": "task", "task": f"Task_{rng.randrange(40)}", "group": rng.choice(["billing", "etl", None]),
                "depends_on": [f"Task_{rng.randrange(40)}" for _ in range(rng.randrange(3))]}
    moment = dt.datetime(2026, 11, 28, 12) + dt.timedelta(milliseconds=rng.randrange(10**8))
    event = {"kind": "status", "run_id": f"fz-{rng.randrange(400)}", "task": f"Task_{rng.randrange(40)}",
             "status": rng.choice(STATUSES), "ts": moment.isoformat(timespec="milliseconds") + "Z",
             "agent": rng.choice(["agent-1", "agent-2", None]), "adhoc": rng.random() < 0.1}
    if rng.random() < 0.3:
        event["exit_code"] = rng.choice([0, 1, -15, 2**31 - 1])
    if rng.random() < 0.3:
        event["message"] = rng.choice(["done", "waiting on [Fetch_Orders]", "<b>x</b>", "é ü 漢字", "a: info"])
    return event


def nested(rng: random.Random, depth: int) -> str:
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def hostile_value(rng: random.Random) -> str:
    """A JSON (or almost JSON) value text that has broken readers."""
    return rng.choice([
        "NaN", "Infinity", "-Infinity", "nan", "inf", "-inf", "NAN", "1e999", "-1e999", "9" * 5000, "-" + "9" * 4400,
        "1" * 41, "1" * 40, "2147483648", "-2147483649", "1.5", "true", "null", '""', '"   "', "[]", "{}",
        nested(rng, rng.choice([2, 10, 63, 64, 65, 200, 3000, 100_000])),
        '"' + "x" * rng.choice([255, 256, 257, 4096, 4097, 100_000]) + '"',
        '"\\ud800"', '"a\\udfffb"', '"\\u00e9"', '"\\u0000"', '"\\n"', '"2026-11-28T12:00:00+25:00"',
        '"2026-11-28T12:00:00.1234567Z"', '"0001-01-01T00:00:00+01:00"', '"9999-12-31T23:59:59-01:00"',
        '"2026-11-28"', '"2026-W48-6"', '"20261128T120000Z"', '" 2026-11-28T12:00:00Z "', '"../../etc"',
        '"' + "r" * 128 + '"', '"' + "r" * 129 + '"', '"."', '"..."', '["status"]', '"status"', '"task"',
        '"RUNNING"', '"running"', '"FAILED"', '1,', "[1,]", '{"a":1,}',
    ])


FIELDS = ("kind", "run_id", "task", "status", "ts", "agent", "adhoc", "group", "trigger_time", "exit_code",
          "message", "depends_on", "description", "extra")


def mutate(rng: random.Random, text: str) -> bytes:
    choice = rng.randrange(12)
    data = text.encode("utf-8")
    if choice == 0:  # flip, delete or insert bytes
        data = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(data))
            operation = rng.randrange(3)
            if operation == 0:
                data[at] = rng.randrange(256)
            elif operation == 1:
                del data[at]
            else:
                data.insert(at, rng.randrange(256))
        return bytes(data)
    if choice == 1:  # cut short
        return data[:rng.randrange(len(data))]
    if choice in (2, 3, 4):  # a field replaced (or added) with a hostile value, first or last
        name, value = rng.choice(FIELDS), hostile_value(rng)
        field = f'"{name}":{value}'
        return ("{" + field + "," + text[1:] if rng.random() < 0.5 else text[:-1] + "," + field + "}").encode()
    if choice == 5:  # the same field twice: the first one counts
        name = rng.choice(["status", "run_id", "kind", "ts", "exit_code"])
        return (text[:-1] + f',"{name}":{hostile_value(rng)}}}').encode()
    if choice == 6:  # other encodings
        return rng.choice([b"\xef\xbb\xbf" + data, text.encode("utf-16"), text.encode("utf-16-le"),
                           text.replace("Task", "Tâsk").encode("latin-1", "replace"), data + b"\xff",
                           data.replace(b'"kind"', b'"k\xc3\x28ind"')])
    if choice == 7:  # whitespace and control characters around and inside
        return rng.choice([b" " + data, data + b"\r", b"\t" + data + b"  ", data.replace(b":", b" : "),
                           data + b"\x00", data.replace(b",", b",\x0c"), data + b"\x0b"])
    if choice == 8:  # a trailing comma or a stray bracket
        return rng.choice([text[:-1] + ",}", text + "}", "[" + text + "]", text[:-1] + ",,}", text + text]).encode()
    if choice == 9:  # a field's value with its type changed
        event = json.loads(text)
        name = rng.choice(list(event))
        event[name] = rng.choice([None, 1, 1.0, True, "", [event[name]], {"v": event[name]}, str(event[name]) * 2])
        return json.dumps(event, ensure_ascii=rng.random() < 0.5).encode()
    if choice == 10:  # a field left out
        event = json.loads(text)
        event.pop(rng.choice(list(event)))
        return json.dumps(event).encode()
    return ("{" + ",".join(f'"{name}":{hostile_value(rng)}' for name in rng.sample(FIELDS, rng.randrange(1, 6)))
            + "}").encode()


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 2**40, 1.5, 1e300])
    if kind in (2, 3):
        return rng.choice(["status", "task", "RUNNING", "kind", "", "x" * 10, "é"])
    if kind == 4:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(FIELDS): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def noise(rng: random.Random) -> bytes:
    choice = rng.randrange(4)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
    if choice == 1:
        return "".join(rng.choice('{}[]":,0123456789.eE+-truefalsnul \\') for _ in range(rng.randrange(1, 60))).encode()
    if choice == 2:
        return json.dumps(random_json(rng)).encode()
    return rng.choice([b"", b"   ", b"\r", b"{}", b"[]", b"null", b'"x"', b"\xef\xbb\xbf", b"\xef\xbb\xbf{}"])


def fuzz_lines(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        event = valid_event(rng)
        text = json.dumps(event, ensure_ascii=False, separators=(",", ":") if rng.random() < 0.7 else (", ", ": "))
        roll = rng.random()
        line = text.encode("utf-8") if roll < 0.3 else mutate(rng, text) if roll < 0.85 else noise(rng)
        lines.append(line.replace(b"\n", b" "))
    lines.append(b'{"kind":"status","run_id":"fz-long","task":"T","status":"RUNNING","ts":"2026-11-28T12:00:00Z",'
                 b'"message":"' + b"m" * (READ_CHUNK + 10) + b'"}')  # longer than a read: one error, the rest skipped
    lines.append(b'{"kind":"status","run_id":"fz-1mb","task":"T","status":"RUNNING","ts":"2026-11-28T12:00:00Z",'
                 b'"extra":"' + b"m" * 1_000_000 + b'"}')
    return lines


# ---- the test ----------------------------------------------------------------------------


def is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def write(path, lines: list[bytes]) -> list[tuple[int, bytes]]:
    """Write the lines, each with its newline; return (byte offset, line) for each."""
    placed, offset = [], 0
    with open(path, "wb") as out:
        for line in lines:
            placed.append((offset, line))
            out.write(line + b"\n")
            offset += len(line) + 1
    return placed


@pytest.fixture
def bulk_parses(monkeypatch):
    """How many lines the bulk parser (DuckDB) was given and how many it accepted."""
    seen = {"given": 0, "accepted": 0}
    parse = event_lines.EventLineParser.parse

    def counted(self, lines):
        accepted, others = parse(self, lines)
        seen["given"] += len(lines)
        seen["accepted"] += accepted.num_rows
        return accepted, others

    monkeypatch.setattr(event_lines.EventLineParser, "parse", counted)
    return seen


def what_the_reference_reads(placed: dict[str, list[tuple[int, bytes]]]):
    """(the (file, offset) of every line it rejects, the status events it keeps as (run_id, status, ts),
    the runs they are of, the tasks defined)."""
    errors, transitions, runs, tasks = set(), set(), set(), set()
    for rel, file_lines in placed.items():
        for offset, line in file_lines:
            result = reference(line)
            if result[0] == "error":
                errors.add((rel, offset))
            elif result[0] == "task":
                tasks.add(result[1])
            elif result[0] == "status":
                transitions.add(result[1:])
                runs.add(result[1])
    return errors, transitions, runs, tasks


def assert_never_stuck(ingestor: Ingestor, events_file) -> None:
    """Nothing is read twice, and a line written after the poison is indexed."""
    assert ingestor.catch_up() == {"events": 0, "log_lines": 0, "errors": 0}
    with open(events_file, "ab") as out:
        out.write(b'{"kind":"status","run_id":"after-the-poison","task":"T","status":"RUNNING",'
                  b'"ts":"2026-11-28T12:00:00Z"}\n')
    assert ingestor.catch_up()["events"] == 1
    assert ingestor.index.query("SELECT count(*) AS n FROM runs WHERE run_id = 'after-the-poison'")["n"][0] == 1


def test_every_poisoned_line_is_indexed_or_one_error_and_matches_a_reference_reader(tmp_path, bulk_parses,
                                                                                  monkeypatch):
    monkeypatch.setattr(bad_lines, "ERROR_SAMPLES", 10**6)  # every bad line listed, to check each one
    lines = fuzz_lines(SEED, CASES)
    spool = tmp_path / "spool"
    (spool / "events").mkdir(parents=True)
    # The bulk file is all valid UTF-8 (DuckDB parses its chunks); the other holds every line,
    # invalid UTF-8 included, so its chunks are read line by line in Python.
    files = {"events/bulk.jsonl": [line for line in lines if is_utf8(line)], "events/fallback.jsonl": lines}
    placed = {rel: write(spool / rel, file_lines) for rel, file_lines in files.items()}

    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, spool)
    added = ingestor.catch_up()

    expected_errors, transitions, runs, tasks = what_the_reference_reads(placed)
    errors = index.query('SELECT file, "offset", reason FROM ingest_errors')
    # A run whose end is dated before its start is kept and said once, apart from the lines' errors.
    skewed = errors[errors["reason"].str.contains("before (?:it|they) started")]
    errors = errors.drop(skewed.index)
    actual_errors = set(zip(errors["file"], errors["offset"]))
    print(f"\n{len(lines):,} lines (seed {SEED}) twice: {len(expected_errors):,} errors expected, "
          f"{len(transitions):,} distinct status events of {len(runs)} runs, {len(tasks)} tasks; "
          f"bulk parser given {bulk_parses['given']:,} lines, accepted {bulk_parses['accepted']:,}; ingest: {added}")
    print("reasons:", errors["reason"].str.replace(r"'.*", "", regex=True).value_counts().head(12).to_dict())

    assert bulk_parses["accepted"] > 500, "the bulk path was not exercised"
    assert len(errors) == len(actual_errors), "a line gave more than one ingest error"
    wrongly_rejected = sorted(actual_errors - expected_errors)
    wrongly_kept = sorted(expected_errors - actual_errors)
    line_at = {(rel, offset): line for rel, file_lines in placed.items() for offset, line in file_lines}
    assert not wrongly_rejected, [(where, line_at[where][:150]) for where in wrongly_rejected[:5]]
    assert not wrongly_kept, [(where, line_at[where][:150]) for where in wrongly_kept[:5]]
    assert all(errors["reason"].str.len() > 0)
    ends_before_starts = set(index.query("SELECT run_id FROM runs WHERE finished < started")["run_id"])
    named = skewed["reason"].str.extract(r"^run (.*) ends at ", expand=False).dropna()
    counted = skewed["reason"].str.extract(r"^([\d,]+) more runs", expand=False).dropna().str.replace(",", "")
    print(f"{len(ends_before_starts)} runs end before they start: {len(named)} named, {counted.tolist()} counted")
    assert set(named) <= ends_before_starts and len(named) == len(set(named))
    assert len(named) + counted.astype(int).sum() == len(ends_before_starts)
    counts = index.counts()
    assert (counts["runs"], counts["tasks"]) == (len(runs), len(tasks))
    kept = index.query("SELECT run_id, status, ts FROM transitions")
    assert set(zip(kept["run_id"], kept["status"], kept["ts"].dt.to_pydatetime())) == transitions
    assert_never_stuck(ingestor, spool / "events/fallback.jsonl")
    index.close()


POISON = [
    "[" * 100_000 + "]" * 100_000,
    '{"kind":"status","run_id":"p-1","task":"T","status":"RUNNING","ts":"2026-11-28T12:00:00Z","exit_code":'
    + "9" * 5000 + "}",
    '{"kind":' + "9" * 5000 + "}",
    '{"kind":"task","task":"P","extra":NaN}',
]


def test_the_cli_reports_poisoned_lines_instead_of_crashing(tmp_path):
    spool = tmp_path / "spool"
    (spool / "events").mkdir(parents=True)
    good = '{"kind":"status","run_id":"good-%d","task":"T","status":"SUCCESS","ts":"2026-11-28T12:00:00Z"}'
    (spool / "events" / "poisoned.jsonl").write_text(
        "\n".join([good % 0, *POISON, good % 1]) + "\n", encoding="utf-8")
    for args in (["ingest"], ["runs", "--json", "--since", "7d"], ["errors"]):
        result = subprocess.run([sys.executable, "-m", "dashboard.cli", *args, "--spool", str(spool),
                                 "--index", str(tmp_path / "index.duckdb")],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
        print(f"\ntaskdash {' '.join(args)}: {result.stdout.strip()[:300]}")
    assert "0 tasks, 2 runs, 0 log lines, 4 ingest errors" in subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "ingest", "--spool", str(spool), "--index",
         str(tmp_path / "index.duckdb")], capture_output=True, text=True, timeout=120, cwd=tmp_path).stdout
