"""A stand-in for a real job in the demo workflow: it logs like one for a while, and fails now and then.

INFO and DEBUG lines go to stdout, WARN and ERROR lines to stderr, each with a timestamp and
flushed at once, so the dashboard streams them live. A failure logs an ERROR and ends with a
real Python traceback; SIGTERM is handled like a well-behaved service would (exit code 143).
Standard library only, so it runs on whatever interpreter the runner uses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import signal
import sys
import time

INFO = [
    "connected to {db} in {ms} ms",
    "fetched page {page}/{pages} ({rows:,} rows)",
    "processed batch {page}/{pages}: {rows:,} rows in {ms} ms",
    "wrote {rows:,} rows to {table}",
    "cache hit ratio {ratio:.2f}",
    "uploaded part {page} of s3://demo-bucket/{table}/{day}.parquet ({mb:.1f} MB)",
    "checkpoint saved at offset {offset:,}",
]
DEBUG = [
    "query plan: HashJoin(orders, customers) est_rows={rows:,}",
    "retry policy: max_attempts=5 backoff=exponential",
    "memory in use: {mb:.1f} MB",
    "GET https://api.example.com/v2/{table}?page={page} -> 200 ({ms} ms)",
]
WARN = [
    "slow query on {table}: {ms} ms (threshold 500 ms)",
    "{rows} rows skipped: missing customer_id",
    "retrying request to {db} (attempt 2/5): connection reset by peer",
    "disk usage at {pct}% on /var/lib/demo",
    "deprecated field 'amount_cents' still present in {table}",
]
ERROR = [
    "could not parse record at offset {offset:,}: unexpected end of JSON input",
    "request to https://api.example.com/v2/{table} failed: 503 Service Unavailable",
    "row {offset} violates constraint {table}_pkey; sent to dead-letter queue",
]
FAILURES = [
    (ConnectionError, "connection to {db} lost after {ms} ms"),
    (TimeoutError, "upstream {table} did not answer within 30 s"),
    (ValueError, "invalid currency code 'XXX' in record {offset}"),
    (KeyError, "'customer_id'"),
]
COLOURED = ["\x1b[32m✔ stage complete\x1b[0m", "\x1b[33m⚠ running behind schedule\x1b[0m",
            "\x1b[1;34m▶ starting stage {page}\x1b[0m"]


def seconds_range(text: str) -> tuple[float, float]:
    """A duration such as ``5`` or a range such as ``3-8`` (seconds), for argparse."""
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def log(name: str, level: str, template: str, rng: random.Random) -> None:
    fields = {"db": rng.choice(["postgres://db-1:5432/orders", "postgres://db-2:5432/events"]),
              "ms": rng.randint(3, 1500), "page": rng.randint(1, 12), "pages": 12,
              "rows": rng.randint(10, 50_000), "table": rng.choice(["orders", "events", "users", "invoices"]),
              "ratio": rng.random(), "day": dt.date.today().isoformat(), "mb": rng.uniform(0.5, 300),
              "offset": rng.randint(1000, 9_999_999), "pct": rng.randint(80, 97)}
    stamp = dt.datetime.now().isoformat(sep=" ", timespec="milliseconds")
    stream = sys.stderr if level in ("WARN", "ERROR") else sys.stdout
    print(f"{stamp} {level:<5} [{name}] {template.format(**fields)}", file=stream, flush=True)


def fail(name: str, rng: random.Random) -> None:
    error, template = rng.choice(FAILURES)
    log(name, "ERROR", f"task failed: {error.__name__}", rng)
    raise error(template.format(db="postgres://db-1:5432/orders", ms=rng.randint(100, 30000),
                                table="orders", offset=rng.randint(1, 99999)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="demo_task", help="task name shown in every line")
    parser.add_argument("--seconds", type=seconds_range, default=(5.0, 5.0), help="duration, e.g. 5 or 3-8")
    parser.add_argument("--lines", type=int, default=20, help="about how many lines to write")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="chance of failing, 0-1")
    parser.add_argument("--warn-rate", type=float, default=0.05, help="chance of a line being a WARN")
    parser.add_argument("--error-rate", type=float, default=0.0, help="chance of a line being a non-fatal ERROR")
    parser.add_argument("--debug-rate", type=float, default=0.2, help="chance of a line being a DEBUG")
    parser.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    def on_sigterm(signum, frame):
        log(args.name, "WARN", "received SIGTERM: stopping after the current batch", rng)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    duration = rng.uniform(*args.seconds)
    lines = max(1, args.lines)
    failing = rng.random() < args.fail_rate
    fail_at = rng.randint(lines // 2, lines) if failing else None
    log(args.name, "INFO", f"starting (planned {duration:.1f} s, {lines} steps)", rng)
    for step in range(1, lines + 1):
        time.sleep(duration / lines * rng.uniform(0.5, 1.5))
        if step == fail_at:
            fail(args.name, rng)
        roll = rng.random()
        if roll < args.error_rate:
            log(args.name, "ERROR", rng.choice(ERROR), rng)
        elif roll < args.error_rate + args.warn_rate:
            log(args.name, "WARN", rng.choice(WARN), rng)
        elif roll < args.error_rate + args.warn_rate + args.debug_rate:
            log(args.name, "DEBUG", rng.choice(DEBUG), rng)
        elif roll > 0.95:
            log(args.name, "INFO", rng.choice(COLOURED), rng)
        else:
            log(args.name, "INFO", rng.choice(INFO), rng)
    log(args.name, "INFO", "done", rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
