"""Real logs: escape sequences at ingest and in search, and the first paint of wide pages.

1. ingest of an escape-heavy log (every line coloured, a link and a `\\r` progress line now
   and then) against the same lines plain: the visible text is computed at ingest; target
   within 20 % of the plain ingest.
2. search over the escape-heavy log's visible text (`queries.search_matches`), a frequent and
   an absent text; target ≤ 100 ms at 2M lines.
3. first paint in Chromium of a page of 60,000-character lines (a 1 GB log at the full size)
   and of a page of ordinary lines: from navigation to the first line drawn; target ≤ 1 s.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from serving import CHROMIUM, CHROMIUM_ARGS

from dashboard import queries
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter

from .common import Row, Sizes, rate_row, say, server, timed, timing_row

E = "\x1b"
WIDE = 60_000


def plain_line(n: int) -> str:
    level = "ERROR" if n % 1000 == 0 else "WARN" if n % 97 == 0 else "INFO"
    return f"2026-11-28T12:00:{n % 60:02d}.{n % 1000:03d}Z {level} worker-{n % 17} processed batch {n} of orders_{n % 13}"


def escaped_line(n: int) -> str:
    """The same visible text as plain_line, as a coloured terminal capture writes it."""
    if n % 500 == 0:  # a progress line rewritten with carriage returns
        return f"\r 10% |#    |\r 50% |###  |\r{plain_line(n)}"
    time_, level, rest = plain_line(n).split(" ", 2)
    colour = {"ERROR": 31, "WARN": 33, "INFO": 32}[level]
    link = f"{E}]8;;https://example.com/{n}{E}\\" if n % 100 == 0 else ""
    end = f"{E}]8;;{E}\\" if link else ""
    return f"{E}[2m{time_}{E}[0m {E}[1;{colour}m{level}{E}(B{E}[m {link}{rest}{end}"


def write_spool(folder: Path, make, lines: int) -> Path:
    spool = folder / "spool"
    writer = SpoolWriter(spool, "bench")
    writer.status("r-log", "Bench", "RUNNING", agent="a")
    chunk = 100_000
    for first in range(1, lines + 1, chunk):
        writer.append_log("r-log", "stdout", "".join(make(n) + "\n" for n in range(first, min(lines, first + chunk - 1) + 1)))
    writer.status("r-log", "Bench", "SUCCESS", agent="a", exit_code=0)
    return spool


def ingest_times(spool: Path, samples: int) -> tuple[list[float], Index, Path]:
    """Seconds of each fresh ingest of the spool; the last index is kept open for the searches."""
    times, index = [], None
    for n in range(samples):
        if index is not None:
            index.close()
        path = spool.parent / f"index-{n}.duckdb"
        index = Index(path, fallback_to_private=False)
        start = time.perf_counter()
        Ingestor(index, spool).catch_up()
        times.append(time.perf_counter() - start)
    return times, index, path


def first_paints(url: str, paths: list[str], samples: int) -> list[float]:
    """Seconds from navigation to the first log line drawn, for each opening of each path."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for _ in range(samples):
                for path in paths:
                    page.goto(url + path)
                    page.wait_for_selector(".td-line", timeout=120_000)
                    times.append(page.evaluate("performance.now()") / 1000)
        finally:
            browser.close()
    return times


def figures(sizes: Sizes) -> list[Row]:
    lines = sizes.big_run_lines
    wide_lines = 300 if sizes.name == "quick" else 1024 ** 3 // WIDE  # 17,895 lines: 1 GB
    rows = []
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-terminal-")))
        say(f"writing a plain and an escape-heavy log of {lines:,} lines...")
        plain_spool = write_spool(folder / "plain", plain_line, lines)
        escaped_spool = write_spool(folder / "escaped", escaped_line, lines)
        say("measuring their ingest...")
        plain_times, plain_index, _ = ingest_times(plain_spool, sizes.ingest_repeat)
        plain_index.close()
        escaped_times, index, _ = ingest_times(escaped_spool, sizes.ingest_repeat)
        stack.callback(index.close)
        row = rate_row(f"ingest of an escape-heavy log: {lines:,} lines (baseline: the same lines plain)",
                       lines, escaped_times, plain_times, 0)
        ratio = float(row[4].split("x")[0])
        rows.append((*row[:5], f"within 20 % of plain {'ok' if ratio >= 0.8 else 'MISSED'}"))
        for text in ("error", "no such text"):
            times, found = timed(lambda: queries.search_matches(index, "r-log", "stdout", text), sizes.repeat)
            rows.append(timing_row(f"search of the escape-heavy log's visible text for {text!r}: {len(found):,} "
                                   f"of {lines:,} lines", times, None,
                                   f"≤ {100 * lines / 2_000_000:,.0f} ms (100 ms at 2M lines)",
                                   100 * lines / 2_000_000, None, None))
        say(f"writing a log of {wide_lines:,} lines of {WIDE:,} characters...")
        wide = folder / "wide"
        writer = SpoolWriter(wide / "spool", "bench")
        writer.status("r-wide", "Bench", "RUNNING", agent="a")
        for first in range(1, wide_lines + 1, 500):
            writer.append_log("r-wide", "stdout", "".join(f"{n} " + "w" * WIDE + "\n"
                                                          for n in range(first, min(wide_lines, first + 499) + 1)))
        writer.status("r-wide", "Bench", "SUCCESS", agent="a", exit_code=0)
        writer.status("r-plain", "Bench", "RUNNING", agent="a")
        writer.append_log("r-plain", "stdout", "".join(plain_line(n) + "\n" for n in range(1, 5_001)))
        writer.status("r-plain", "Bench", "SUCCESS", agent="a", exit_code=0)
        pages = -(-wide_lines // queries.LOG_PAGE_LINES)
        wide_index = wide / "index.duckdb"
        say("indexing it...")
        built = Index(wide_index, fallback_to_private=False)
        Ingestor(built, wide / "spool").catch_up()
        built.close()
        url, _, _ = stack.enter_context(server(wide / "spool", wide_index))
        say("measuring first paints in Chromium...")
        wide_paths = [f"/task-runs/r-wide?page={page}" for page in sorted({1, pages // 2 + 1, pages})]
        times = first_paints(url, wide_paths, sizes.heavy_repeat)
        plain_times = first_paints(url, ["/task-runs/r-plain?page=5"], sizes.heavy_repeat)
        rows.append(timing_row(f"first paint of a page of {WIDE:,}-character lines ({wide_lines:,} lines, "
                               f"{wide_lines * WIDE / 1e9:.2f} GB; pages 1, middle, last) in Chromium", times,
                               plain_times, "≤ 1 s (baseline: a page of ordinary lines)", 1000, None, None))
    return rows
