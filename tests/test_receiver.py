"""`taskdash receive`, a real subprocess on a free port of 127.0.0.1 over a temporary spool: events
sent by the real OpenLineage client's HTTP transport and by plain HTTP reach the spool's events
file whole and durably, and bad, oversized or unauthenticated requests leave it as it was."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from helpers import wait_until
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunState
from openlineage.client.facet_v2 import error_message_run
from openlineage.client.serde import Serde
from serving import RECEIVE_TOKEN, ReceiverProcess, dashboard_server, indexed_lines, receiving
from test_openlineage import BAD_OPENLINEAGE_LINES, LOGICAL_DATE, NAMESPACE, T0, dag_run_event, task_event

from dashboard.cli import main
from dashboard.spool import format_timestamp

#: The shared receiver's body limit: small, so the 413 tests send little.
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    with receiving(tmp_path_factory.mktemp("receiver") / "spool", "--max-body-bytes", str(LIMIT)) as receiver:
        yield receiver


def post(receiver, path, body: bytes, token=RECEIVE_TOKEN, **headers):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(receiver.url + path, data=body, headers=headers, timeout=30)


def status_line(run_id, status="RUNNING", task="Receive_Task", seconds=0, **fields) -> bytes:
    return json.dumps({"kind": "status", "run_id": run_id, "task": task, "status": status,
                       "ts": format_timestamp(T0 + dt.timedelta(seconds=seconds)), **fields}).encode()


def spool_bytes(receiver) -> bytes:
    return receiver.events_path.read_bytes()


def peak_memory(receiver) -> int:
    """The receiver process's peak resident memory so far, in bytes (Linux's VmHWM)."""
    status = (Path("/proc") / str(receiver.process.pid) / "status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024


def openlineage_client(receiver, api_key=RECEIVE_TOKEN, **transport):
    return OpenLineageClient(config={"transport": {
        "type": "http", "url": receiver.url, "auth": {"type": "api_key", "apiKey": api_key},
        "retry": {"total": 0}, **transport}})


def taskdash_runs(spool, folder) -> dict[str, dict]:
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", "runs", "--json", "--spool", str(spool),
                             "--index", str(folder / "index.duckdb")],
                            capture_output=True, text=True, timeout=120, cwd=folder)
    assert result.returncode == 0, result.stderr
    return {run["run_id"]: run for run in json.loads(result.stdout)}


def test_openlineage_clients_http_transport_lands_in_the_spool_and_shows_as_runs(receiver, tmp_path):
    ids = {name: str(uuid.uuid4()) for name in ("dag", "extract", "load")}
    dag = ids["dag"]
    events = [
        dag_run_event(RunState.START, dag, 0, LOGICAL_DATE),
        task_event(RunState.START, ids["extract"], "extract", 1, dag, LOGICAL_DATE),
        task_event(RunState.COMPLETE, ids["extract"], "extract", 5, dag, LOGICAL_DATE),
        task_event(RunState.START, ids["load"], "load", 6, dag, LOGICAL_DATE),
        task_event(RunState.FAIL, ids["load"], "load", 9, dag, LOGICAL_DATE,
                   errorMessage=error_message_run.ErrorMessageRunFacet(
                       message="ZeroDivisionError: division by zero", programmingLanguage="python")),
        dag_run_event(RunState.FAIL, dag, 10, LOGICAL_DATE),
    ]
    before = len(spool_bytes(receiver))
    plain, compressed = openlineage_client(receiver), openlineage_client(receiver, compression="gzip")
    for n, event in enumerate(events):
        (compressed if n % 2 else plain).emit(event)  # its HttpTransport raises on anything but 2xx

    lines = spool_bytes(receiver)[before:].split(b"\n")
    assert lines[-1] == b"", "every line ends with its newline"
    assert [json.loads(line) for line in lines[:-1]] == [json.loads(Serde.to_json(e)) for e in events]
    runs = taskdash_runs(receiver.spool, tmp_path)
    load = runs[ids["load"]]
    assert (load["task"], load["group"], load["status"], load["agent"], load["message"]) == (
        "billing.load", NAMESPACE, "FAILED", "Airflow 3.1.0", "ZeroDivisionError: division by zero")
    assert (runs[ids["extract"]]["status"], runs[dag]["status"]) == ("SUCCESS", "FAILED")


def test_a_running_dashboard_server_shows_a_received_run_live(receiver, tmp_path):
    run_id = str(uuid.uuid4())
    with dashboard_server(tmp_path, spool=receiver.spool) as server:
        server.wait_for_output("index caught up with the spool")
        openlineage_client(receiver).emit(dag_run_event(RunState.START, run_id, 0, LOGICAL_DATE))
        # The log download answers for a run the server's index holds (0 lines: OpenLineage sends none).
        wait_until(lambda: indexed_lines(server, run_id) == 0, timeout=60, message="the server to index the run")


def test_our_own_event_lines_over_plain_http_with_crlf_blank_lines_and_gzip(receiver, tmp_path):
    run_id = f"r-plain-{uuid.uuid4().hex[:8]}"
    task = b'{"kind": "task", "task": "Receive_Task", "group": "remote", "depends_on": []}'
    body = b"\r\n".join([task, b"", status_line(run_id, "STARTED", agent="host-2"),
                         status_line(run_id, "RUNNING", seconds=1, agent="host-2")])  # no final newline
    before = spool_bytes(receiver)
    answer = post(receiver, "/api/v1/events", body, **{"Content-Type": "application/x-ndjson"})
    assert (answer.status_code, answer.json()) == (200, {"appended": 3})
    done = status_line(run_id, "SUCCESS", seconds=4, agent="host-2", exit_code=0) + b"\n"
    answer = post(receiver, "/api/v1/events", gzip.compress(done), **{"Content-Encoding": "gzip"})
    assert (answer.status_code, answer.json()) == (200, {"appended": 1})

    added = spool_bytes(receiver)[len(before):]
    assert added == b"\n".join([task, status_line(run_id, "STARTED", agent="host-2"),
                                status_line(run_id, "RUNNING", seconds=1, agent="host-2")]) + b"\n" + done
    run = taskdash_runs(receiver.spool, tmp_path)[run_id]
    assert (run["status"], run["group"], run["agent"], run["exit_code"]) == ("SUCCESS", "remote", "host-2", 0)


#: A producer configured only by its environment or its openlineage.yml, as dbt-ol is: the
#: client's default configuration, in a process of its own (the client writes os.environ).
DEFAULT_CLIENT = """
import sys, uuid
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
OpenLineageClient().emit(RunEvent(eventType=RunState.START, eventTime=sys.argv[1], producer="https://example.com/dbt",
                                  run=Run(runId=str(uuid.uuid4())), job=Job(namespace="dbt", name=sys.argv[2])))
"""


def test_a_producer_set_up_by_openlineage_url_and_api_key_or_openlineage_yml_as_dbt_ol_is(receiver, tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    by_environment = clean | {"OPENLINEAGE_URL": receiver.url, "OPENLINEAGE_API_KEY": RECEIVE_TOKEN}
    (tmp_path / "openlineage.yml").write_text(
        f"transport:\n  type: http\n  url: {receiver.url}\n  auth:\n    type: api_key\n    apiKey: {RECEIVE_TOKEN}\n"
        "  compression: gzip\n")
    before = len(spool_bytes(receiver))
    for name, env in (("model.by_environment", by_environment), ("model.by_yml", clean)):
        subprocess.run([sys.executable, "-c", DEFAULT_CLIENT, format_timestamp(T0), name], env=env, cwd=tmp_path,
                       check=True, capture_output=True, timeout=120)
    received = [json.loads(line) for line in spool_bytes(receiver)[before:].splitlines()]
    assert [(e["eventType"], e["job"]["name"]) for e in received] == [
        ("START", "model.by_environment"), ("START", "model.by_yml")]


def test_an_indented_openlineage_body_is_appended_as_one_line(receiver):
    event = json.loads(Serde.to_json(dag_run_event(RunState.START, str(uuid.uuid4()), 0, LOGICAL_DATE)))
    body = json.dumps(event, indent=2).replace("\n", "\r\n").encode()  # as curl or a debug mode sends it
    before = len(spool_bytes(receiver))
    answer = post(receiver, "/api/v1/lineage", body, **{"Content-Type": "application/json"})
    assert (answer.status_code, answer.json()) == (200, {"appended": 1})
    added = spool_bytes(receiver)[before:]
    assert added.count(b"\n") == 1 and added.endswith(b"\n") and b"\r" not in added
    assert json.loads(added) == event


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789abcdef", f"Basic {RECEIVE_TOKEN}",
                                    f"Bearer {RECEIVE_TOKEN[:-1]}", f"Bearer {RECEIVE_TOKEN}x", "Bearer",
                                    f"Bearer {RECEIVE_TOKEN}\u00e9"])
def test_without_the_right_token_401_and_nothing_appended(receiver, header):
    before = spool_bytes(receiver)
    headers = {} if header is None else {"Authorization": header.encode("utf-8")}
    for path in ("/api/v1/events", "/api/v1/lineage"):
        answer = post(receiver, path, status_line("r-intruder"), token=None, **headers)
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Bearer <token>" in answer.json()["error"]
    assert spool_bytes(receiver) == before


def test_the_openlineage_client_with_a_wrong_api_key_is_refused(receiver):
    before = spool_bytes(receiver)
    with pytest.raises(requests.HTTPError, match="401"):
        openlineage_client(receiver, api_key="not-the-token-0123456789").emit(
            dag_run_event(RunState.START, str(uuid.uuid4()), 0, LOGICAL_DATE))
    assert spool_bytes(receiver) == before


def test_a_body_over_the_limit_is_413_and_nothing_appended(receiver):
    before = spool_bytes(receiver)
    line = status_line("r-big", message="x" * 1000) + b"\n"
    at_limit = line * (LIMIT // len(line))
    at_limit += b" " * (LIMIT - len(at_limit) - 1) + b"\n"
    assert len(at_limit) == LIMIT
    assert post(receiver, "/api/v1/events", at_limit).status_code == 200, "exactly the limit is taken"
    taken = spool_bytes(receiver)
    assert len(taken) - len(before) == len(line) * (LIMIT // len(line))

    over = at_limit + b"\n"
    answer = post(receiver, "/api/v1/events", over)
    assert answer.status_code == 413 and f"over {LIMIT:,} bytes" in answer.json()["error"]
    answer = post(receiver, "/api/v1/events", iter([over[:1000], over[1000:]]))  # chunked: no length announced
    assert answer.status_code == 413
    bomb = gzip.compress(b" " * (60 << 20), compresslevel=9)  # 60 MiB of spaces in 60 kB
    assert len(bomb) < LIMIT
    peak = peak_memory(receiver)
    answer = post(receiver, "/api/v1/events", bomb, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 413 and "decompresses to over" in answer.json()["error"]
    assert peak_memory(receiver) - peak < 16 << 20, "the bomb was inflated no further than the limit"
    assert spool_bytes(receiver) == taken


def test_a_huge_announced_length_is_refused_before_any_body_is_read(receiver):
    host = urlsplit(receiver.url)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    connection.putrequest("POST", "/api/v1/lineage")
    connection.putheader("Authorization", f"Bearer {RECEIVE_TOKEN}")
    connection.putheader("Content-Length", str(10 << 30))
    connection.endheaders()  # and not one byte of the 10 GiB
    answer = connection.getresponse()
    assert answer.status == 413, answer.read()
    connection.close()
    for length in ("1\u00b2", "-1", "12 34", "9" * 40):  # "²" is a digit to str.isdigit, not to int()
        connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        connection.putrequest("POST", "/api/v1/events")
        connection.putheader("Authorization", f"Bearer {RECEIVE_TOKEN}")
        connection.putheader("Content-Length", length.encode("latin-1"))
        connection.endheaders()
        answer = connection.getresponse()
        assert answer.status == 400 and b"Content-Length is not a number" in answer.read(), length
        connection.close()


BAD_BODIES = [
    ("/api/v1/events", b"not json\n", "line 1: not JSON"),
    ("/api/v1/events", b'{"kind": "status", "run_id": "r-1"}\n', "line 1: missing field 'status'"),
    ("/api/v1/events", b"\n\n", "no event lines"),
    ("/api/v1/events", status_line("r-ok") + b"\n" + status_line("r-future", ts="9999-01-01T00:00:00Z"),
     "line 2: 'ts' 9999-01-01T00:00:00 is over a day ahead"),
    ("/api/v1/lineage", b'{"eventType": "START", "run": {"runId": "a"}}\n{"x": 1}', "the body: not JSON"),
    *[("/api/v1/lineage", line, reason) for line, reason in BAD_OPENLINEAGE_LINES],
]


@pytest.mark.parametrize("path, body, reason", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_a_bad_body_is_400_with_its_reason_and_nothing_appended(receiver, path, body, reason):
    before = spool_bytes(receiver)
    answer = post(receiver, path, body)
    assert answer.status_code == 400
    assert reason in answer.json()["error"] and "nothing of this request was appended" in answer.json()["error"]
    assert spool_bytes(receiver) == before


def test_one_bad_line_refuses_its_whole_request(receiver):
    before = spool_bytes(receiver)
    body = b"\n".join([status_line("r-good-1"), status_line("r-good-2", status="DONE"), status_line("r-good-3")])
    answer = post(receiver, "/api/v1/events", body)
    assert answer.status_code == 400 and answer.json()["error"].startswith("line 2: unknown status 'DONE'")
    wait_until(lambda: any("400 POST /api/v1/events (127.0.0.1)" in line and "line 2: unknown status 'DONE'" in line
                           for line in receiver.output), timeout=10, message="the refusal in the receiver's log")
    answer = post(receiver, "/api/v1/events", b"\x1f\x8b not gzip", **{"Content-Encoding": "gzip"})
    assert answer.status_code == 400 and "not valid gzip" in answer.json()["error"]
    answer = post(receiver, "/api/v1/events", gzip.compress(body)[:-8], **{"Content-Encoding": "gzip"})
    assert answer.status_code == 400 and "cut short" in answer.json()["error"]
    assert spool_bytes(receiver) == before


def test_concurrent_posts_are_appended_whole_never_interleaved(receiver):
    senders, requests_each, lines_each = 12, 8, 40

    def send(sender: int) -> None:
        with requests.Session() as session:
            for request in range(requests_each):
                body = b"\n".join(status_line(f"r-c{sender}-{request}", seconds=line, message=f"{line:04d}" + "y" * 900)
                                  for line in range(lines_each))
                answer = session.post(receiver.url + "/api/v1/events", data=body, timeout=60,
                                      headers={"Authorization": f"Bearer {RECEIVE_TOKEN}"})
                assert answer.status_code == 200, answer.text

    before = len(spool_bytes(receiver))
    with concurrent.futures.ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, range(senders)))
    lines = spool_bytes(receiver)[before:].split(b"\n")
    assert lines.pop() == b""
    events = [json.loads(line) for line in lines]  # each line whole
    assert len(events) == senders * requests_each * lines_each
    # Each request's lines are one block, in the order sent: no other request's bytes between them.
    for first in range(0, len(events), lines_each):
        block = events[first:first + lines_each]
        assert {e["run_id"] for e in block} == {block[0]["run_id"]}
        assert [e["message"][:4] for e in block] == [f"{n:04d}" for n in range(lines_each)]


def test_a_line_answered_2xx_survives_sigkill_of_the_receiver(tmp_path):
    receiver = ReceiverProcess(tmp_path / "spool")
    lines = [status_line(f"r-durable-{n}", status="SUCCESS", message="z" * 2000) for n in range(200)]
    host = urlsplit(receiver.url)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    try:
        connection.request("POST", "/api/v1/events", b"\n".join(lines),
                           headers={"Authorization": f"Bearer {RECEIVE_TOKEN}"})
        status = connection.getresponse().status  # the status line and headers, not yet the body
    finally:
        receiver.kill()  # at once after the answer: no shutdown, no flush of any kind
        connection.close()
    assert status == 200
    assert receiver.events_path.read_bytes() == b"".join(line + b"\n" for line in lines)
    assert oct(os.stat(receiver.events_path).st_mode & 0o777) == "0o644"


def test_a_full_disk_answers_503_and_leaves_no_part_of_the_request(tmp_path):
    # A file size limit (RLIMIT_FSIZE) fails a write past it as a full disk does (EFBIG), without root.
    first = status_line("r-fits", message="a" * 500)
    receiver = ReceiverProcess(tmp_path / "spool", prefix=("prlimit", f"--fsize={len(first) + 1 + 1000}:"))
    try:
        assert post(receiver, "/api/v1/events", first).status_code == 200
        answer = post(receiver, "/api/v1/events", b"\n".join([status_line("r-over-1", message="b" * 500)] * 3))
        assert answer.status_code == 503 and "nothing of this request was appended" in answer.json()["error"]
        assert receiver.events_path.read_bytes() == first + b"\n", "the part that fitted was taken back"
        assert post(receiver, "/api/v1/events", status_line("r-fits-too")).status_code == 200
    finally:
        receiver.stop()
    assert receiver.events_path.read_bytes() == first + b"\n" + status_line("r-fits-too") + b"\n"


@pytest.mark.parametrize("token, extra, message", [
    (None, [], "no token: set $TASKDASH_RECEIVE_TOKEN or give --token-file"),
    ("short", [], "at least 16 printable ASCII characters"),
    (RECEIVE_TOKEN, ["--token-file", "/nonexistent/token"], "cannot read the token file /nonexistent/token"),
    (RECEIVE_TOKEN, ["--keyfile", "key.pem"], "--keyfile needs --certfile"),
    (RECEIVE_TOKEN, ["--certfile", "/nonexistent/cert.pem"], "cannot use the certificate /nonexistent/cert.pem"),
])
def test_the_receiver_refuses_to_start_without_a_usable_token_or_certificate(tmp_path, monkeypatch, capsys, token,
                                                                              extra, message):
    monkeypatch.delenv("TASKDASH_RECEIVE_TOKEN", raising=False)
    if token:
        monkeypatch.setenv("TASKDASH_RECEIVE_TOKEN", token)
    assert main(["receive", "--spool", str(tmp_path / "spool"), "--port", "0", *extra]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "spool").exists(), "nothing is created before the receiver can start"


def test_a_port_in_use_stops_the_receiver_with_a_message_and_nothing_in_the_spool(tmp_path):
    # A process of its own: tornado's bind_sockets leaves the socket it could not bind to the
    # garbage collector (a ResourceWarning here, nothing in a CLI that exits).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = subprocess.run([sys.executable, "-m", "dashboard.cli", "receive", "--spool", str(tmp_path / "spool"),
                                 "--port", str(taken.getsockname()[1])], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "TASKDASH_RECEIVE_TOKEN": RECEIVE_TOKEN})
    assert result.returncode == 1
    assert "taskdash: cannot receive: Address already in use" in result.stderr
    assert not (tmp_path / "spool").exists()


def test_the_token_file_wins_and_the_receiver_listens_on_loopback_by_default(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file-0123456789\n")
    with receiving(tmp_path / "spool", "--token-file", str(token_file)) as receiver:
        assert urlsplit(receiver.url).hostname == "127.0.0.1"
        assert post(receiver, "/api/v1/events", status_line("r-file")).status_code == 401
        answer = post(receiver, "/api/v1/events", status_line("r-file"), token="from-the-file-0123456789")
        assert answer.status_code == 200


def test_over_https_the_openlineage_client_sends_with_its_ca_bundle(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    with receiving(tmp_path / "spool", "--certfile", str(cert), "--keyfile", str(key)) as receiver:
        assert receiver.url.startswith("https://127.0.0.1:")
        run_id = str(uuid.uuid4())
        openlineage_client(receiver, sslContext={"caCertPath": str(cert)}).emit(
            dag_run_event(RunState.START, run_id, 0, LOGICAL_DATE))
        assert json.loads(receiver.events_path.read_bytes())["run"]["runId"] == run_id
        with pytest.raises(requests.ConnectionError):  # plain HTTP: no answer, the token never read
            requests.post(receiver.url.replace("https", "http") + "/api/v1/events", data=status_line("r-plain"),
                          headers={"Authorization": f"Bearer {RECEIVE_TOKEN}"}, timeout=30)
        assert receiver.events_path.read_bytes().count(b"\n") == 1
