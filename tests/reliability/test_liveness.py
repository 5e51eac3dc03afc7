"""Honest liveness: a page says how current it is, stops its clocks while the server is gone, and
after the server comes back its followed log is the spool's, line for line."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time

from helpers import wait_until
from playwright.sync_api import expect
from serving import DashboardServer, free_port

from dashboard.formatting import utcnow
from dashboard.spool import SpoolWriter

LINES = 400
#: Appends LINES lines to the file it is given, one every 20 ms, as a running command would.
WRITER = ("import sys, time\n"
          "with open(sys.argv[1], 'a') as log:\n"
          f"    for n in range(1, {LINES + 1}):\n"
          "        log.write(f'event {n} of the stream\\n'); log.flush(); time.sleep(0.02)\n")
AS_OF = re.compile(r"^as of \d\d:\d\d:\d\d · \d+\.\d s behind$")


def shown_seconds(page, selector: str) -> float:
    """The running duration shown in the first `selector`, in seconds.

    Read from its text, not by watching the cell: the grid may draw its rows again meanwhile
    (a new cell, counting on from the same start)."""
    text = page.locator(selector).first.inner_text().strip()
    parts = re.fullmatch(r"(?:(\d+)h )?(?:(\d+)m )?([\d.]+)s|(\d+)h (\d+)m", text)
    assert parts, f"not a duration: {text!r}"
    hours, minutes, seconds, long_hours, long_minutes = (float(part or 0) for part in parts.groups())
    return (hours + long_hours) * 3600 + (minutes + long_minutes) * 60 + seconds


def assert_counts_on(page, selector: str, message: str) -> None:
    """The duration shown counts on by 2 s within 15 s (the page ticks each second; on a busy
    machine a tick can come late, so no fixed span is asserted)."""
    before = shown_seconds(page, selector)
    wait_until(lambda: shown_seconds(page, selector) - before >= 2, timeout=15, message=message)


def seconds_counted(page, selector: str, ms: int) -> float:
    """How far the running duration in the first `selector` counts on in the next `ms` milliseconds."""
    before = shown_seconds(page, selector)
    page.wait_for_timeout(ms)  # the span of time measured, not a wait for something to happen
    return shown_seconds(page, selector) - before


def test_a_killed_server_stops_the_clocks_and_the_followed_log_is_the_spool_s_after_a_restart(tmp_path, context):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("Stream_Events", "etl")
    began = utcnow() - dt.timedelta(seconds=30)
    writer.status("r-live", "Stream_Events", "RUNNING", ts=began, trigger_time=began, agent="agent-1")
    log = writer.log_path("r-live", "stdout")
    port = str(free_port())
    server = DashboardServer(tmp_path, "--port", port)
    runs, detail = context.new_page(), context.new_page()
    command = None
    try:
        runs.goto(f"{server.url}/task-runs")
        detail.goto(f"{server.url}/task-runs/r-live")
        for tab in (runs, detail):
            expect(tab.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=60_000)
            expect(tab.locator(".td-conn .td-asof")).to_have_text(AS_OF, timeout=20_000)
        duration = '.tabulator-row .tabulator-cell[tabulator-field="duration"]'
        assert_counts_on(runs, duration, "a running run's duration to count while live")

        command = subprocess.Popen([sys.executable, "-c", WRITER, str(log)])
        expect(detail.locator(".td-line").nth(50)).to_be_visible(timeout=30_000)  # followed as it grows
        as_of = [tab.locator(".td-conn .td-asof").inner_text() for tab in (runs, detail)]
        server.kill()
        killed = time.monotonic()
        for tab in (runs, detail):
            expect(tab.locator(".td-conn")).to_have_attribute("data-state", re.compile("Connecting|Disconnected"),
                                                              timeout=2_000)
        noticed = time.monotonic() - killed
        assert seconds_counted(runs, duration, 2_500) == 0, "the duration stopped counting while the server is gone"
        assert [tab.locator(".td-conn .td-asof").inner_text() for tab in (runs, detail)][0].startswith("as of ")
        print(f"server killed: both pages said so within {noticed:.1f} s; durations stopped; "
              f"as of before the kill {as_of}")

        command.wait(timeout=60)  # the command writes on while no server reads
        server = DashboardServer(tmp_path, "--port", port)
        for tab in (runs, detail):
            expect(tab.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=60_000)
        spool = log.read_text(encoding="utf-8").splitlines()
        assert len(spool) == LINES
        shown = detail.locator(".td-line .td-text")
        wait_until(lambda: shown.all_inner_texts() == spool, timeout=30,
                   message="the followed log to be the spool's, line for line")
        assert_counts_on(runs, duration, "the duration to count again once live")
        print(f"after the restart the followed log shows the spool's {LINES} lines, none doubled or missing")
    except BaseException:
        print("---- server output ----\n" + "".join(server.output))
        raise
    finally:
        if command is not None and command.poll() is None:
            command.kill()
        server.stop()
