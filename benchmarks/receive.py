"""The receiver: events over HTTP into the spool (`taskdash receive`, a real subprocess).

1. one OpenLineage event a request, sent by the real client's HTTP transport (each request
   checked, written and fsync'd before its answer); baseline: the same client's file transport
   into the spool's events folder, the other way to reach the dashboard (no network, no fsync).
2. event lines in requests of about 4 MiB (the body limit); baseline: the check alone
   (`spool.decode_event_lines` of the same lines in this process), which bounds what the
   receiver can take.
3. eight senders at once, one event a request each.
No target is set (the issue sets none): the figures say what a scheduler's events cost.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import requests
from serving import RECEIVE_TOKEN, ReceiverProcess

from dashboard.spool import decode_event_lines, format_timestamp

from .common import Row, Sizes, say, timed, timing_row

SENDERS = 8
HEADERS = {"Authorization": f"Bearer {RECEIVE_TOKEN}"}


def status_line(n: int) -> bytes:
    return (f'{{"kind": "status", "run_id": "r-bench-{n}", "task": "Bench_Task_{n % 50}", "status": "RUNNING", '
            f'"ts": "{format_timestamp()}", "agent": "host-{n % 7}", "message": "{"m" * 200}"}}').encode()


def run_event(n: int):
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

    return RunEvent(eventType=RunState.START, eventTime=dt.datetime.now(dt.timezone.utc).isoformat(),
                    producer="https://example.com/bench", run=Run(runId=str(uuid.uuid4())),
                    job=Job(namespace="bench", name=f"dag.task_{n % 50}"))


def emit_times(client, samples: int) -> list[float]:
    times = []
    for n in range(samples):
        event = run_event(n)
        start = time.perf_counter()
        client.emit(event)
        times.append(time.perf_counter() - start)
    return times


def figures(sizes: Sizes) -> list[Row]:
    from openlineage.client import OpenLineageClient

    samples = sizes.repeat * 10
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-receive-") as folder:
        spool = Path(folder) / "spool"
        receiver = ReceiverProcess(spool)
        try:
            say(f"sending {samples} OpenLineage events one a request, then through the file transport...")
            http = OpenLineageClient(config={"transport": {"type": "http", "url": receiver.url,
                                                           "auth": {"type": "api_key", "apiKey": RECEIVE_TOKEN}}})
            ours = emit_times(http, samples)
            file = OpenLineageClient(config={"transport": {"type": "file", "append": True,
                                                           "log_file_path": str(spool / "events" / "file.jsonl")}})
            rows.append(_reported("receive: one OpenLineage event a request, the client's HTTP transport "
                                  "(baseline: its file transport)", ours, emit_times(file, samples)))

            count = (4 << 20) // (len(status_line(10 ** 6)) + 1)  # what fits the body limit (4 MiB)
            body = b"\n".join(status_line(n) for n in range(count))
            say(f"sending {count:,} event lines a request ({len(body) / 1e6:.1f} MB)...")
            with requests.Session() as session:
                def send() -> None:
                    answer = session.post(receiver.url + "/api/v1/events", data=body, headers=HEADERS, timeout=120)
                    assert answer.status_code == 200, answer.text

                ours, _ = timed(send, sizes.heavy_repeat)
            check, _ = timed(lambda: [decode_event_lines(raw) for raw in body.split(b"\n")], sizes.heavy_repeat)
            rows.append(_reported(f"receive: {count:,} event lines in one request ({len(body) / 1e6:.1f} MB, "
                                  f"{count / statistics.median(ours):,.0f} lines/s; baseline: decoding them alone)",
                                  ours, check))

            say(f"{SENDERS} senders at once...")
            each = max(10, samples // SENDERS)

            def sender(k: int) -> list[float]:
                times = []
                with requests.Session() as session:
                    for n in range(each):
                        start = time.perf_counter()
                        answer = session.post(receiver.url + "/api/v1/events", data=status_line(k * each + n),
                                              headers=HEADERS, timeout=60)
                        times.append(time.perf_counter() - start)
                        assert answer.status_code == 200, answer.text
                return times

            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
                times = [t for result in pool.map(sender, range(SENDERS)) for t in result]
            elapsed = time.perf_counter() - start
            rows.append(_reported(f"receive: {SENDERS} senders at once, one event a request "
                                  f"({len(times) / elapsed:,.0f} requests/s in all)", times, None))
        finally:
            receiver.stop()
    return rows


def _reported(name: str, ours: list[float], baseline: list[float] | None) -> Row:
    """A timing row with no target: the issue sets none."""
    return (*timing_row(name, ours, baseline, "", None, None, None)[:5], "report only")
