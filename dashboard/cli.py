"""taskdash: serve the dashboard, run workflows, and query the index from a terminal."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ORIGIN, ConfigError, load_config
from .lake import UPKEEP_SECONDS, LakeError, LakeUnreachable
from .spool import STREAMS, SpoolError, SpoolWriteError, validate_run_id
from .statuses import STATUSES

if TYPE_CHECKING:
    from .ingest import Ingestor

# The index, its queries (DuckDB, pandas) and the server are imported by the commands that
# use them: `taskdash adhoc` and `taskdash run` start in a fraction of the time.


#: Characters a terminal acts on instead of showing: C0 controls but tab, DEL, C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def escaped(text) -> str:
    """Text from the spool (task names, groups, agents, log lines) as a terminal should print it:
    each control character escaped (ESC as \\x1b), so a name cannot clear the screen or set the
    window title. `--json` keeps the data exact (JSON escapes them itself)."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], str(text))


#: How often `taskdash ship` tries again to reach a catalog it cannot attach.
SHIP_RETRY_SECONDS = 2.0
#: How long `taskdash ship` gathers a spool's changes into one commit while they keep coming (a
#: quiet spool commits at once): at most 4 lake commits a second per host, each a snapshot and a
#: few small files for the upkeep to merge (the local ingestor's 50 ms made up to 20).
SHIP_DEBOUNCE_MS = 250


class CommandError(Exception):
    """A command cannot do what was asked; its message is for the user."""


def _settings(args):
    config = load_config(args.config)
    return config.with_overrides(spool=args.spool, index=getattr(args, "index", None), **_lake_options(args))


def _lake_options(args) -> dict:
    return {"catalog": getattr(args, "catalog", None), "data_path": getattr(args, "data_path", None),
            "catalog_password_file": getattr(args, "catalog_password_file", None)}


def _lake_arguments(args) -> list[str]:
    """The lake options given on this command's line, for a `taskdash` it starts."""
    names = {"catalog": "--catalog", "data_path": "--data-path", "catalog_password_file": "--catalog-password-file"}
    return [part for key, value in _lake_options(args).items() if value for part in (names[key], str(value))]


def _open_index(args, rebuild: bool = False):
    """The index and its ingestor, caught up with the spool (with a progress bar when there is much to read)."""
    from .index import Index, IndexLockedError
    from .ingest import Ingestor

    config = _settings(args)
    if config.lake is not None:  # the hosts' `taskdash ship` fill the lake: a command only reads it
        if rebuild:
            raise CommandError("a lake is shared by every host and server: --rebuild drops only a local index")
        return Index(None, lake=config.lake, read_only=True, memory=config.index_memory, copy_logs=False), None
    try:
        index = Index(config.index, fallback_to_private=False, memory=config.index_memory, copy_logs=False)
    except IndexLockedError as exc:
        if rebuild:
            raise
        # One command's private index lives in memory: nothing to write to disk or to clean up.
        index = Index(None, memory=config.index_memory, copy_logs=False)
        print(f"note: {exc}; using a private in-memory index for this command", file=sys.stderr)
    if index.rebuilt_reason:
        print(f"note: {index.rebuilt_reason}", file=sys.stderr)
    if rebuild:
        index.clear()
    ingestor = Ingestor(index, config.spool)
    _catch_up_with_progress(ingestor)
    return index, ingestor


def _catch_up_with_progress(ingestor: Ingestor) -> dict[str, int]:
    from tqdm import tqdm

    offsets = ingestor.index.load_offsets()
    pending = 0
    for rel in ingestor.spool_files():
        try:
            size = (ingestor.spool / rel).stat().st_size
        except FileNotFoundError:
            continue
        pending += max(0, size - offsets.get(rel, (0,))[0])
    with tqdm(total=pending, unit="B", unit_scale=True, desc="indexing spool", file=sys.stderr,
              disable=pending < 16 * 1024 * 1024 or None, leave=False) as bar:
        return ingestor.catch_up(progress=bar.update)


def cmd_ingest(args) -> int:
    from .index import IndexLockedError

    try:
        index, _ = _open_index(args, rebuild=args.rebuild)
    except IndexLockedError as exc:
        raise CommandError(f"{exc}: stop the server that uses it before --rebuild") from None
    counts = index.counts()
    where = index.lake.safe_catalog if index.lake else index.path or "(private, in memory)"
    print(f"index {where}: {counts['tasks']:,} tasks, {counts['runs']:,} runs, "
          f"{counts['log_lines']:,} log lines, {counts['ingest_errors']:,} ingest errors")
    index.close()
    return 0


def cmd_runs(args) -> int:
    from . import queries
    from .formatting import clock, human_duration, iso_utc, plain

    try:
        run_filter = _run_filter(args)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    index, _ = _open_index(args)
    runs = queries.runs_page(index, run_filter, limit=args.limit)
    total = queries.count_runs(index, run_filter)
    index.close()
    records = [{
        "run_id": r.run_id, "task": r.task, "group": plain(r.grp), "status": r.status, "agent": plain(r.agent),
        "adhoc": bool(r.adhoc), "trigger_time": iso_utc(r.trigger_time), "started": iso_utc(r.started),
        "finished": iso_utc(r.finished),
        "exit_code": None if plain(r.exit_code) is None else int(r.exit_code),
        "duration_seconds": plain(r.duration), "message": plain(r.message),
        "blocked": plain(r.blocked), "blocks": int(r.blocks),
        "expected_finish": iso_utc(r.expected_finish), "late": bool(r.late),
    } for r in runs.itertuples()]
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    header = ("RUN_ID", "TASK", "GROUP", "STATUS", "AGENT", "TRIGGERED", "DURATION")
    rows = [tuple(map(escaped, (r["run_id"], r["task"] + (" [ADHOC]" if r["adhoc"] else ""), r["group"] or "",
                              r["status"], r["agent"] or "", clock(trigger), human_duration(r["duration_seconds"]))))
            for r, trigger in zip(records, runs["trigger_time"])]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"{len(rows):,} of {total:,} matching runs", file=sys.stderr)
    return 0


def cmd_logs(args) -> int:
    from . import queries
    from .terminal import visible  # a line as the log viewer shows it: colours and other escapes removed

    _check_run_id(args.run_id)
    index, _ = _open_index(args)
    if queries.run(index, args.run_id) is None:
        raise CommandError(f"no run {args.run_id!r} in the index (see `taskdash runs`)")
    total = queries.log_line_counts(index, args.run_id)[args.stream]
    if args.search:
        line_numbers = queries.search_matches(index, args.run_id, args.stream, args.search)
        for first in range(0, len(line_numbers), queries.LOG_PAGE_LINES):  # fetch matching lines a page at a time
            chunk = line_numbers[first:first + queries.LOG_PAGE_LINES]
            lines = queries.log_page(index, args.run_id, args.stream, int(chunk[0]), int(chunk[-1] - chunk[0] + 1))
            wanted = set(chunk.tolist())
            for number, text in zip(lines["line_no"], lines["text"]):
                if number in wanted:
                    print(f"{number:>7}  {escaped(visible(text))}")
        print(f"{len(line_numbers):,} matching lines of {total:,} in {args.stream}", file=sys.stderr)
    else:
        pages = queries.page_count(total, queries.LOG_PAGE_LINES)
        page = pages if args.page == -1 else args.page
        if not 1 <= page <= pages:
            raise CommandError(f"page {args.page} does not exist: {args.stream} has {pages} page(s)")
        size = queries.LOG_PAGE_LINES
        lines = queries.log_page(index, args.run_id, args.stream, (page - 1) * size + 1, size)
        for number, text in zip(lines["line_no"], lines["text"]):
            print(f"{number:>7}  {escaped(visible(text))}")
        print(f"{args.stream}: page {page} of {pages}, {total:,} lines", file=sys.stderr)
    index.close()
    return 0


def cmd_errors(args) -> int:
    from . import queries
    from .formatting import iso_utc

    index, ingestor = _open_index(args)
    errors = queries.ingest_errors(index, limit=args.limit)
    index.close()
    # (a lake's errors are of the hosts' spools: their byte offsets are given, not lines)
    lines = _line_numbers(ingestor.spool, zip(errors["file"], errors["offset"])) if ingestor else {}
    for e in errors.itertuples():
        line = lines.get((e.file, e.offset))
        where = f" byte {e.offset}" if e.offset >= 0 else ""
        print(f"{iso_utc(e.recorded)}  {escaped(e.file)}{where}" + (f", line {line}" if line else "")
              + f"  {escaped(e.reason)}" + (f"\n    {e.excerpt[:160]!r}" if e.excerpt else ""))
    print(f"{len(errors):,} ingest errors", file=sys.stderr)
    return 0


def cmd_failures(args) -> int:
    from .failures import failure_signatures
    from .formatting import iso_utc

    try:
        run_filter = _run_filter(args)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    index, _ = _open_index(args)
    groups = failure_signatures(index, run_filter, _settings(args).log_emphasis)
    index.close()
    records = [{
        "signature": g.signature, "runs": int(g.runs), "first_seen": iso_utc(g.first_seen),
        "last_seen": iso_utc(g.last_seen), "tasks": g.tasks, "agents": g.agents,
        "new": None if g.new is None else bool(g.new), "example": g.example, "run_ids": g.run_ids,
    } for g in groups.itertuples()]
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    for r in records:
        new = "  NEW" if r["new"] else ""
        print(f"{r['runs']:>6,}  {escaped(r['signature'])}{new}\n        last {r['last_seen']}, "
              f"first {r['first_seen']}; {len(r['tasks'])} tasks: {escaped(', '.join(r['tasks'][:5]))}"
              + (" …" if len(r["tasks"]) > 5 else "") + f"; latest run {escaped(r['run_ids'][0])}")
    print(f"{sum(r['runs'] for r in records):,} failed or terminated runs, {len(records):,} signatures",
          file=sys.stderr)
    return 0


def cmd_search(args) -> int:
    from . import queries
    from .formatting import iso_utc

    try:
        run_filter = _run_filter(args)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    index, _ = _open_index(args)
    try:
        found = queries.fleet_search(index, args.text, run_filter, regex=args.regex, limit=args.limit)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    finally:
        index.close()
    records = [{
        "run_id": r.run_id, "task": r.task, "status": r.status, "trigger_time": iso_utc(r.trigger_time),
        "stdout_matches": int(r.stdout_matches), "stderr_matches": int(r.stderr_matches),
        "first_match": {"stream": r.first_stream, "line": int(r.first_line), "text": r.first_text},
    } for r in found.itertuples()]
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    for r in records:
        first = r["first_match"]
        print(f"{escaped(r['run_id'])}  {escaped(r['task'])}  {r['status']}  "
              f"{r['stdout_matches']:,} stdout + {r['stderr_matches']:,} stderr lines\n"
              f"    {first['stream']}:{first['line']}  {escaped(first['text'][:200])}")
    print(f"{len(records):,} runs with matching lines" + (" (the newest; --limit for more)"
                                                          if len(records) == args.limit else ""), file=sys.stderr)
    return 0


def cmd_why(args) -> int:
    from . import queries
    from .blocking import cycle_of
    from .formatting import clock

    _check_run_id(args.run_id)
    index, _ = _open_index(args)
    try:
        run = queries.run(index, args.run_id)
        found = cycle_of(index, args.run_id)
    finally:
        index.close()
    if run is None:
        raise CommandError(f"no run {args.run_id!r} in the index")
    if found is None:
        print(f"{escaped(args.run_id)} ({escaped(run['task'])}, {run['status']}) is not blocked and blocks nothing")
        return 0
    cycle, task = found

    def describe(step) -> str:
        when = "never started" if step.started is None else f"started {clock(step.started)}"
        if step.finished is not None and step.status in ("FAILED", "TERMINATED"):
            when += f", {step.status.lower()} {clock(step.finished)}"
        message = f'  "{escaped(step.message[:200])}"' if step.message else ""
        return f"{escaped(step.task)}  {escaped(step.run_id)}  {step.status} ({when}){message}"

    chain = cycle.chain(task)
    for n, step in enumerate(chain):
        print(("  ← " if n else "") + describe(step))
    blocked = cycle.blocked(task)
    root = chain[-1]
    if blocked is None:
        print(f"it failed on its own: it blocks {cycle.blocks(task):,} runs of its cycle "
              f"(triggered {clock(run['trigger_time'])})")
    else:
        others = [r.task for r in blocked.roots[1:]]
        print(f"root cause: {escaped(root.task)} ({escaped(root.run_id)}), which blocks {cycle.blocks(root.task):,} "
              "runs of this cycle" + (f"; also held by {escaped(', '.join(others))}" if others else ""))
    return 0


def _check_run_id(run_id: str) -> None:
    """CommandError, in the spool's words, unless `run_id` is a valid run id."""
    try:
        validate_run_id(run_id)
    except SpoolError as exc:
        raise CommandError(str(exc)) from None


def _run_filter(args):
    """The runs filter the command line asks for (--status, --task, --since, --group)."""
    from . import queries

    return queries.RunFilter.from_user(getattr(args, "status", None) or (), args.task or "", args.since, args.group)


def _line_numbers(spool: Path, places) -> dict[tuple[str, int], int]:
    """The 1-based line each (file, byte offset) of the spool starts in, where the file still has it."""
    wanted: dict[str, set[int]] = {}
    for file, offset in places:
        if offset is not None and offset >= 0:
            wanted.setdefault(file, set()).add(int(offset))
    found = {}
    for file, offsets in wanted.items():
        try:
            with open(spool / file, "rb") as handle:
                newlines, position = 0, 0
                for offset in sorted(offsets):  # one pass over the file, up to its last wanted offset
                    while position < offset:
                        chunk = handle.read(min(8 << 20, offset - position))
                        if not chunk:
                            break
                        newlines += chunk.count(b"\n")
                        position += len(chunk)
                    if position == offset:
                        found[(file, offset)] = newlines + 1
        except OSError:
            continue  # removed or unreadable since: the byte offset alone is given
    return found


def cmd_serve(args) -> int:
    from . import app
    from .components import offload
    from .lake_feed import ATTACH_RETRY_SECONDS

    origins = tuple(args.allow_websocket_origin or ())
    refused = next((origin for origin in origins if not ORIGIN.fullmatch(origin)), None)
    if refused is not None:
        raise CommandError(f"--allow-websocket-origin {refused!r}: give host or host:port, as browsers reach the "
                           "server (e.g. dash.example.com behind a proxy on the scheme's default port)")
    config = load_config(args.config).with_overrides(
        spool=args.spool, index=args.index, port=args.port, address=args.address,
        allow_websocket_origin=origins or None, retention_days=args.retention_days, **_lake_options(args))
    if args.ship and config.lake is None:
        raise CommandError("--ship ships this server's spool to a lake: give --catalog URL --data-path PATH (or set "
                           "index.mode lake in the settings)")
    runner = shipper = None
    try:
        server = app.serve(config, start=False)  # a bad setting stops here, before the demo runner starts
        if args.demo and not config.demo_workflow.is_file():
            raise CommandError(f"--demo runs the workflow {config.demo_workflow.absolute()}, which is not there: "
                               "start from the project's folder, or set demo_workflow in the settings file")
        if config.lake is not None and (args.ship or args.demo):
            # In lake mode a server reads the lake only: its own spool (the demo's runs) reaches the
            # lake, and so its pages, through a `taskdash ship` of its own.
            shipper = subprocess.Popen([sys.executable, "-m", "dashboard.cli",
                                        *(["--config", args.config] if args.config else []), "ship",
                                        "--spool", str(config.spool), *_lake_arguments(args)])
        if args.demo:
            runner = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "run", str(config.demo_workflow),
                                       "--spool", str(config.spool)])
        server.start()
        loop = server.io_loop
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: loop.add_callback_from_signal(loop.stop))
        route = config.routes["task_runs"]
        print(f"Task Runs Dashboard: http://{config.address}:{server.port}{route}", flush=True)
        if config.access.enabled:
            print("access control on: every page, the websocket and the log downloads require login", flush=True)
        index = app.services().index
        if index.is_private:
            print(f"note: {index.private_reason}; using a private index", flush=True)
        if index.rebuilt_reason:
            print(f"note: {index.rebuilt_reason}", flush=True)
        elif index.created:
            print(f"note: there was no index at {index.path}: building it from the spool", flush=True)
        if index.lake_failure is not None:
            print(f"note: {index.lake_failure}; the pages show nothing of the lake (their indicator says "
                  f"Error) until it can be attached, tried again every {ATTACH_RETRY_SECONDS:g} s", flush=True)
        threading.Thread(target=_report_catch_up, args=(app.services(),), daemon=True).start()
        # What a started server holds for good (modules, classes, the pages' code: about 290,000
        # objects) is left out of the collector's full passes, which stop every thread: a full pass
        # took 140 ms with them, and interactions' p95 showed it.
        gc.collect()
        gc.freeze()
        loop.start()
    finally:
        for child in (runner, shipper):  # the runner first: the shipper ships what it wrote
            if child is not None:
                _stop_child(child)
        offload.settle()  # the pages' work under way reads the index: it ends before the index closes
        app.stop_services()
    return 0


#: How long `serve` waits for its runner or shipper to end after SIGTERM (the runner ends its runs
#: within their grace of 5 s) before it kills it.
CHILD_STOP_SECONDS = 30


def _stop_child(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(CHILD_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"note: {' '.join(child.args[2:4])} did not end within {CHILD_STOP_SECONDS} s of SIGTERM: killed",
              file=sys.stderr, flush=True)
        child.kill()
        child.wait()


def _report_catch_up(services) -> None:
    """Say when the index has caught up with the spool, so an operator knows the pages are complete."""
    services.ingestor.caught_up.wait()
    counts = services.index.counts()
    source = "the lake" if services.index.lake is not None else "the spool"
    print(f"index caught up with {source}: {counts['runs']:,} runs, "
          f"{counts['log_lines']:,} log lines, {counts['ingest_errors']:,} ingest errors", flush=True)


def cmd_ship(args) -> int:
    """Follow this host's spool into the lake until stopped (SIGINT or SIGTERM)."""
    import socket

    from .index import Index
    from .ingest import Ingestor

    from .lake_upkeep import LakeUpkeep

    config = _settings(args).with_overrides(retention_days=args.retention_days)
    if config.lake is None:
        raise CommandError("ship writes to a lake: give --catalog URL --data-path PATH (or set index.mode lake "
                           "in the settings file)")
    host = args.host or socket.gethostname()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    index, told = None, False
    while index is None:  # a host that cannot reach the catalog keeps its spool and ships once it can
        try:
            index = Index(None, lake=config.lake, host=host, memory=config.index_memory)
        except LakeUnreachable as exc:
            if not told:
                print(f"taskdash ship: {exc}; trying again every {SHIP_RETRY_SECONDS:g} s (the spool keeps "
                      "everything meanwhile)", file=sys.stderr, flush=True)
                told = True
            if stop.wait(SHIP_RETRY_SECONDS):
                return 0
    ingestor = Ingestor(index, config.spool, rescan_seconds=config.rescan_seconds, debounce_ms=SHIP_DEBOUNCE_MS)
    print(f"shipping the spool {config.spool} of host {escaped(host)} to the lake {config.lake.safe_catalog}",
          file=sys.stderr, flush=True)
    ingestor.start()
    # Compaction and retention: every host offers, one at a time does it (see lake_upkeep).
    upkeep = LakeUpkeep(config.lake, args.compact_seconds, config.retention_days) if args.compact_seconds > 0 else None
    if upkeep is not None:
        upkeep.start()
        print(f"compacting the lake every {args.compact_seconds:g} s when no other host is"
              + (f"; dropping runs inactive for over {config.retention_days:g} days" if config.retention_days else ""),
              file=sys.stderr, flush=True)
    while not stop.is_set() and not ingestor.caught_up.wait(0.5):  # a failed step is tried again
        pass
    if ingestor.caught_up.is_set():
        counts = index.counts()
        print(f"caught up: the lake holds {counts['runs']:,} runs, {counts['log_lines']:,} log lines",
              file=sys.stderr, flush=True)
    stop.wait()
    if upkeep is not None:
        upkeep.stop()
    ingestor.stop()
    index.close()
    return 0


def cmd_run(args) -> int:
    from .runner import Scheduler
    from .workflow import WorkflowError, load_workflow

    config = load_config(args.config).with_overrides(spool=args.spool)
    try:
        workflow = load_workflow(args.workflow)
    except WorkflowError as exc:
        raise CommandError(str(exc)) from None
    scheduler = Scheduler(workflow, config.spool, cycles=args.cycles)
    # The handler only sets a flag: a lock taken in it deadlocked the runner when a second signal
    # (a process group's SIGTERM, then `serve`'s own) came while stop() held that lock.
    stop_signals = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: stop_signals.append(signum))
    print(f"running {workflow.name}: {len(workflow.tasks)} tasks every {workflow.schedule_seconds:g} s "
          f"into {config.spool}", file=sys.stderr, flush=True)
    scheduler.start()
    while not stop_signals and not scheduler.wait(timeout=0.2):
        pass
    scheduler.stop()
    return 0


def cmd_adhoc(args) -> int:
    from .runner import run_adhoc

    config = load_config(args.config).with_overrides(spool=args.spool)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise CommandError("give the command after --, for example: taskdash adhoc -- echo hello")
    return run_adhoc(config.spool, command, agent=args.agent, task=args.task, echo=True)


def cmd_terminate(args) -> int:
    from .runner import RunnerError, terminate

    config = load_config(args.config).with_overrides(spool=args.spool)
    try:
        print(terminate(config.spool, args.run_id))
    except (RunnerError, SpoolError) as exc:
        raise CommandError(str(exc)) from None
    return 0


def cmd_follow_airflow_logs(args) -> int:
    from .airflow_logs import AirflowLogFollower

    if not args.logs.is_dir():
        raise CommandError(f"no Airflow log folder at {args.logs} (give $AIRFLOW_HOME/logs)")
    return _follow(args, AirflowLogFollower(args.logs, load_config(args.config).with_overrides(spool=args.spool).spool))


def cmd_follow_dbt_logs(args) -> int:
    from .dbt_logs import DbtLogFollower

    if not args.log.parent.is_dir():
        raise CommandError(f"no dbt log folder at {args.log.parent} (give the project's logs/dbt.log)")
    return _follow(args, DbtLogFollower(args.log, load_config(args.config).with_overrides(spool=args.spool).spool))


def _follow(args, follower) -> int:
    if args.once:
        follower.step()
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"following into {follower.spool} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        follower.follow(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


def cmd_receive(args) -> int:
    from .receiver import MAX_BODY_BYTES, ReceiverError, read_token, serve, tls_context

    config = load_config(args.config).with_overrides(spool=args.spool)
    try:
        token = read_token(args.token_file)
        tls = tls_context(args.certfile, args.keyfile)
    except ReceiverError as exc:
        raise CommandError(str(exc)) from None
    max_body_bytes = MAX_BODY_BYTES if args.max_body_bytes is None else args.max_body_bytes
    if max_body_bytes < 1024:
        raise CommandError("--max-body-bytes must be at least 1024")
    try:
        serve(config.spool, args.port, args.address, token, max_body_bytes, tls)
    except OSError as exc:  # the port is taken, the address is not this machine's, the spool is not writable
        raise CommandError(f"cannot receive: {exc.strerror or exc}") from None
    return 0


def _days(text: str) -> float:
    from .config import retention_days

    try:
        return retention_days(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="taskdash", description=__doc__)
    root.add_argument("--config", help="settings file (default: $TASKDASH_CONFIG or ./panel_serve.yaml)")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help, index=True):
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(func=func)
        sub.add_argument("--spool", help="spool folder (default: from the settings)")
        if index:
            sub.add_argument("--index", help="DuckDB index file (default: from the settings)")
            sub.add_argument("--catalog", help="lake mode: the lake's PostgreSQL catalog, postgresql://user@host:port/"
                             "database (its password from $TASKDASH_CATALOG_PASSWORD or --catalog-password-file)")
            sub.add_argument("--data-path", help="lake mode: the folder of the lake's Parquet files")
            sub.add_argument("--catalog-password-file", help="lake mode: a file holding the catalog's password")
        return sub

    serve = command("serve", cmd_serve, "start the dashboard server and its ingestor")
    serve.add_argument("--config", default=argparse.SUPPRESS,
                       help="settings file, as the --config before the command (this one wins)")
    serve.add_argument("--port", type=int, help="port (0 picks a free one)")
    serve.add_argument("--address", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--demo", action="store_true", help="also run the demo workflow into the spool (in lake "
                       "mode, shipped to the lake: --ship)")
    serve.add_argument("--ship", action="store_true", help="lake mode: also ship this server's own spool to the "
                       "lake, as `taskdash ship` does (its role must be allowed to write the lake)")
    serve.add_argument("--allow-websocket-origin", action="append", metavar="HOST[:PORT]",
                       help="an address browsers reach the server at, e.g. a proxy's (repeatable; replaces "
                       "allow_websocket_origin of the settings)")
    serve.add_argument("--retention-days", type=_days, help="local mode: drop runs (their events and logs) "
                       "inactive for more than this many days (default: index.retention_days, else keep all)")

    ingest = command("ingest", cmd_ingest, "catch the index up with the spool and print its counts")
    ingest.add_argument("--rebuild", action="store_true", help="drop the index and rebuild it from the spool")

    runs = command("runs", cmd_runs, "list runs, newest first")
    runs.add_argument("--status", action="append", choices=STATUSES, type=str.upper, metavar="STATUS",
                      help=f"only this status (repeatable): {', '.join(STATUSES)}")
    runs.add_argument("--task", help="only tasks whose name contains this text")
    runs.add_argument("--group", help="only this group")
    runs.add_argument("--since", help="only runs triggered within this range, e.g. 6h, 3d")
    runs.add_argument("--limit", type=int, default=50, help="at most this many runs (default 50)")
    runs.add_argument("--json", action="store_true", help="print one JSON array")

    logs = command("logs", cmd_logs, "print a page of a run's log, or the lines matching a search")
    logs.add_argument("run_id")
    logs.add_argument("--stream", choices=STREAMS, default="stdout")
    logs.add_argument("--page", type=int, default=1, help="page of the log, as on the run's page; -1 is the last")
    logs.add_argument("--search", help="print only lines containing this text (case-insensitive)")

    errors = command("errors", cmd_errors, "list ingest errors: bad spool lines and files")
    errors.add_argument("--limit", type=int, default=1000)

    ship = command("ship", cmd_ship, "follow this host's spool into the lake (lake mode), until stopped")
    ship.add_argument("--host", help="this spool's name in the lake (default: the machine's host name); "
                      "each spool shipped to one lake needs its own")
    ship.add_argument("--retention-days", type=_days, help="drop the lake's runs (their events and logs) inactive "
                      "for more than this many days (default: index.retention_days, else keep all)")
    ship.add_argument("--compact-seconds", type=float, default=UPKEEP_SECONDS, help="how often to offer to compact "
                      f"the lake, one host at a time (default {UPKEEP_SECONDS:g}; 0: never)")

    search = command("search", cmd_search, "which runs printed this text: matching runs, newest first, "
                     "with their matching line counts and first matching line")
    search.add_argument("text", help="literal text, any case (or a regular expression with --regex)")
    search.add_argument("--regex", action="store_true", help="TEXT is a regular expression (RE2, case-sensitive)")
    search.add_argument("--status", action="append", choices=STATUSES, type=str.upper, metavar="STATUS",
                        help=f"only this status (repeatable): {', '.join(STATUSES)}")
    search.add_argument("--task", help="only tasks whose name contains this text")
    search.add_argument("--group", help="only this group")
    search.add_argument("--since", help="only runs triggered within this range, e.g. 6h, 3d")
    search.add_argument("--limit", type=int, default=50, help="at most this many runs (default 50)")
    search.add_argument("--json", action="store_true", help="print one JSON array")

    why = command("why", cmd_why, "why a run can no longer start: the chain up to its root cause, "
                  "and how many runs that cause blocks")
    why.add_argument("run_id")

    failures = command("failures", cmd_failures, "group failed and terminated runs by the signature of their "
                       "last error line (numbers, ids, paths, times and quoted values masked)")
    failures.add_argument("--status", action="append", choices=("FAILED", "TERMINATED"), type=str.upper,
                          metavar="STATUS", help="only FAILED or only TERMINATED runs")
    failures.add_argument("--task", help="only tasks whose name contains this text")
    failures.add_argument("--group", help="only this group")
    failures.add_argument("--since", default="24h",
                          help="runs triggered within this range (default 24h); a signature not seen in the "
                               "range before it is NEW")
    failures.add_argument("--json", action="store_true", help="print one JSON array")

    run = command("run", cmd_run, "run a workflow with the built-in scheduler", index=False)
    run.add_argument("workflow", type=Path, help="workflow file (YAML or TOML)")
    run.add_argument("--cycles", type=int, help="stop after this many cycles (default: run until stopped)")

    adhoc = command("adhoc", cmd_adhoc, "run a one-off command as an ADHOC run", index=False)
    adhoc.add_argument("--agent", default="adhoc", help="agent name shown for the run")
    adhoc.add_argument("--task", help="task name (default: Adhoc_<command>)")
    adhoc.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")

    terminate = command("terminate", cmd_terminate, "end a running run's process group", index=False)
    terminate.add_argument("run_id")

    follow = command("follow-airflow-logs", cmd_follow_airflow_logs,
                     "copy Airflow's task logs (and OpenLineage stack traces) into the runs' logs", index=False)
    follow.add_argument("--logs", type=Path, required=True, help="Airflow's log folder ($AIRFLOW_HOME/logs)")
    follow.add_argument("--once", action="store_true", help="copy what is there and stop")
    follow_dbt = command("follow-dbt-logs", cmd_follow_dbt_logs,
                         "copy dbt's JSON log (and OpenLineage stack traces) into the runs' logs", index=False)
    follow_dbt.add_argument("--log", type=Path, required=True, help="dbt's log file (the project's logs/dbt.log)")
    follow_dbt.add_argument("--once", action="store_true", help="copy what is there and stop")

    receive = command("receive", cmd_receive, "accept event lines and OpenLineage events over HTTP from other "
                      "machines, appended to the spool", index=False)
    receive.add_argument("--port", type=int, default=5007, help="port (default 5007; 0 picks a free one)")
    receive.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    receive.add_argument("--token-file", help="file holding the bearer token senders present "
                         "(default: $TASKDASH_RECEIVE_TOKEN)")
    receive.add_argument("--max-body-bytes", type=int, help="largest request body, as sent and decompressed "
                         "(default 4 MiB)")
    receive.add_argument("--certfile", help="serve HTTPS with this certificate chain (PEM): the token then never "
                         "crosses the network in clear")
    receive.add_argument("--keyfile", help="the certificate's private key (PEM), if not in --certfile")
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (CommandError, ConfigError, LakeError) as exc:
        print(f"taskdash: {exc}", file=sys.stderr)
        return 1
    except SpoolWriteError as exc:
        print(f"taskdash: {exc.strerror}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
