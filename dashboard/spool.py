"""The spool contract: where writers append events and logs, and what a valid event is.

Writers (the runner, a scheduler, a notebook) only ever append files here; the ingestor
reads them into the index. Nothing in this module touches DuckDB or Panel.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import secrets
import socket
import stat
import threading
from pathlib import Path

import numpy as np

from . import openlineage
from .statuses import STATUSES

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
STREAMS = ("stdout", "stderr")
EVENT_KINDS = ("task", "status")


class SpoolError(ValueError):
    """An event that breaks the contract; its message says why, for the ingest error list."""


class SpoolUnreadableError(SpoolError):
    """A spool file that cannot be read now (its permissions, say) but may be later."""


class SpoolWriteError(OSError):
    """The spool could not take a write (a full disk, say); nothing of the event was left in it."""


def events_dir(spool: Path) -> Path:
    return Path(spool) / "events"


def logs_dir(spool: Path) -> Path:
    return Path(spool) / "logs"


def validate_run_id(run_id: object) -> str:
    """Return the run id if it may name a folder, else raise SpoolError."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id) or run_id in (".", ".."):
        raise SpoolError(
            f"bad run_id {str(run_id)[:80]!r}: use 1-128 letters, digits, '.', '_' or '-'"
        )
    return run_id


#: The identity of a folder: (device, inode).
FolderId = tuple[int, int]


def folder_id(folder: Path | int) -> FolderId:
    """The device and inode of a folder, by path (following a link to it) or open descriptor."""
    found = os.stat(folder)
    return found.st_dev, found.st_ino


def open_spool_file(spool: Path, rel: str, folders: dict[str, FolderId] | None = None) -> int:
    """Open a spool file for reading, its check and its open one step; return its descriptor.
    (SpoolFolders.open, for one file.)"""
    with SpoolFolders(spool, folders) as opened:
        return opened.open(rel)


class SpoolFolders:
    """A spool's events/ and logs/ folders, each opened once (when a file in it is first opened) and
    held until closed, so that an ingest step opens its files from them rather than from the spool's
    path each time (a catch-up of 200,000 run folders opened and checked the top folder 200,000
    times: 3 of a file's 8 system calls)."""

    def __init__(self, spool: Path | str, identities: dict[str, FolderId] | None = None):
        self._spool = os.fspath(spool)
        #: What events/ and logs/ must still be (see open), if given.
        self._identities = identities
        self._opened: dict[str, int] = {}

    def open(self, rel: str) -> int:
        """Open a spool file for reading, its check and its open one step; return its descriptor.

        `rel` is events/<name> or logs/<run_id>/<name>. The events/ or logs/ folder may itself be
        a link (to a bigger disk, say), but if identities were given it must still be the folder of
        that identity. Below it nothing is followed: each part is opened with O_NOFOLLOW relative
        to the folder opened before it, so a link swapped in at any moment is refused, never read.
        Only a regular file with one name is opened (a FIFO would block the reader; a hard link is
        refused like a symbolic one). Raises SpoolError for a link or anything else not readable
        under the contract, SpoolUnreadableError if it cannot be read now (no permission, say),
        FileNotFoundError if it is gone.
        """
        top, *middle, name = rel.split("/")
        nofollow = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
        opened = [self._top(top)]
        try:
            for part in middle:
                opened.append(os.open(part, nofollow | os.O_DIRECTORY, dir_fd=opened[-1]))
            # A device, FIFO or socket is not even opened (opening some has effects); one swapped in
            # after this look is refused below, once open.
            mode = os.stat(name, dir_fd=opened[-1], follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise OSError(errno.ELOOP, "a symbolic link")
            if not stat.S_ISREG(mode):
                raise SpoolError(_NOT_REGULAR)
            fd = os.open(name, nofollow, dir_fd=opened[-1])
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise SpoolError(f"a symbolic link in the spool's {top}/ folder: not read "
                                 "(no link below events/ or logs/ is followed)") from None
            if exc.errno == errno.ENXIO:  # a socket swapped in
                raise SpoolError(_NOT_REGULAR) from None
            if exc.errno != errno.ENOENT:  # no permission, an I/O error: maybe not for ever
                raise SpoolUnreadableError(f"cannot be read: {exc.strerror}") from None
            raise
        finally:
            for folder in opened[1:]:
                os.close(folder)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            os.close(fd)
            raise SpoolError(_NOT_REGULAR if not stat.S_ISREG(info.st_mode) else
                             f"a hard link (the file has {info.st_nlink} names): not read, as a symbolic link "
                             "would not be (a file of the spool has one name)")
        return fd

    def _top(self, top: str) -> int:
        """events/ or logs/, opened (following a link to it) and checked once."""
        if top in self._opened:
            return self._opened[top]
        folder = os.open(os.path.join(self._spool, top), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if self._identities is not None and folder_id(folder) != self._identities[top]:
            os.close(folder)
            raise SpoolError(f"the spool's {top}/ folder was replaced since the ingestor started: not read")
        self._opened[top] = folder
        return folder

    def close(self) -> None:
        for folder in self._opened.values():
            os.close(folder)
        self._opened.clear()

    def __enter__(self) -> SpoolFolders:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_NOT_REGULAR = "not a regular file (a device, FIFO, socket or folder): not read"


def log_path(spool: Path, run_id: str, stream: str) -> Path:
    """The file a run's stream is appended to: logs/<run_id>/<stream>.log."""
    if stream not in STREAMS:
        raise SpoolError(f"unknown stream {stream!r}: use one of {', '.join(STREAMS)}")
    return logs_dir(spool) / validate_run_id(run_id) / f"{stream}.log"


def parse_timestamp(value: object, field: str = "ts") -> dt.datetime:
    """An ISO 8601 timestamp as a naive UTC datetime; without a zone it means UTC."""
    if not isinstance(value, str) or not value:
        raise SpoolError(f"missing or non-text {field!r} timestamp")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise SpoolError(f"{field!r} is not an ISO 8601 timestamp: {value[:60]!r}") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise SpoolError(f"{field!r} is out of range in UTC: {value[:60]!r}") from None
    return parsed


def format_timestamp(moment: dt.datetime | None = None) -> str:
    """A timestamp as the spool writes it: ISO 8601 UTC with milliseconds and a Z."""
    moment = moment or dt.datetime.now(dt.timezone.utc)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def _text(event: dict, field: str, required: bool = False, limit: int = 1024) -> str | None:
    value = event.get(field)
    if value is None:
        if required:
            raise SpoolError(f"missing field {field!r}")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise SpoolError(f"field {field!r} must be non-empty text")
    if len(value) > limit:
        raise SpoolError(f"field {field!r} is longer than {limit} characters")
    _check_characters(value, field)
    return value


def _check_characters(value: str, field: str) -> None:
    """A \\u escape of a lone surrogate decodes to a str that no UTF-8 store can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SpoolError(f"field {field!r} holds a \\u escape of a lone surrogate, which is not a character") from None


def parse_event(event: object) -> dict:
    """Validate one decoded event line and return it normalised, or raise SpoolError."""
    if not isinstance(event, dict):
        raise SpoolError(f"an event must be a JSON object, not {type(event).__name__}")
    kind = event.get("kind")
    if kind == "task":
        depends_on = event.get("depends_on") or []
        if not isinstance(depends_on, list) or not all(isinstance(d, str) and d for d in depends_on):
            raise SpoolError("field 'depends_on' must be a list of task names")
        for name in depends_on:
            _check_characters(name, "depends_on")
        return {
            "kind": "task",
            "task": _text(event, "task", required=True, limit=256),
            "group": _text(event, "group", limit=256),
            "depends_on": list(dict.fromkeys(depends_on)),
            "description": _text(event, "description", limit=4096),
        }
    if kind == "status":
        for required in ("run_id", "status"):
            if event.get(required) is None:
                raise SpoolError(f"missing field {required!r}")
        status = event["status"]
        if status not in STATUSES:
            raise SpoolError(f"unknown status {str(status)[:40]!r}: use one of {', '.join(STATUSES)}")
        adhoc = event.get("adhoc", False)
        if not isinstance(adhoc, bool):
            raise SpoolError("field 'adhoc' must be true or false")
        exit_code = event.get("exit_code")
        if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)
                                      or not -2**31 <= exit_code < 2**31):
            raise SpoolError("field 'exit_code' must be a 32-bit integer")
        trigger_time = event.get("trigger_time")
        return {
            "kind": "status",
            "run_id": validate_run_id(event.get("run_id")),
            "task": _text(event, "task", required=True, limit=256),
            "status": status,
            "ts": parse_timestamp(event.get("ts")),
            "agent": _text(event, "agent", limit=256),
            "adhoc": adhoc,
            "group": _text(event, "group", limit=256),
            "trigger_time": None if trigger_time is None else parse_timestamp(trigger_time, "trigger_time"),
            "exit_code": exit_code,
            "message": _text(event, "message", limit=4096),
        }
    if kind is None:
        raise SpoolError("missing field 'kind'")
    raise SpoolError(f"unknown kind {str(kind)[:40]!r}: use one of {', '.join(EVENT_KINDS)}")


#: Arrays and objects nested deeper than this make a line an error (an event is flat; its
#: depends_on is two levels): a bound that holds whatever the stack depth of the caller.
MAX_NESTING = 64
#: An integer with more digits than this is read as a float (inf when huge): Python refuses to
#: convert over 4,300 digits, and no field of the contract holds such a number anyway.
MAX_INT_DIGITS = 40
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_OPENING, _CLOSING = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def _first_field_wins(pairs: list[tuple[str, object]]) -> dict:
    return dict(reversed(pairs))


def _refuse_constant(name: str) -> None:
    raise SpoolError(f"not JSON: {name} is not a JSON number")


def _bounded_int(digits: str) -> int | float:
    return int(digits) if len(digits) <= MAX_INT_DIGITS else float(digits)


def _nesting(text: str) -> int:
    """How deep arrays and objects nest in a JSON text (strings left out)."""
    structure = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8"), np.uint8)
    steps = np.isin(structure, _OPENING).astype(np.int64) - np.isin(structure, _CLOSING)
    return int(np.cumsum(steps).max(initial=0))


def decode_event_line(raw: bytes) -> dict:
    """One event line of our own, validated and normalised, or raise SpoolError."""
    return parse_event(_decode_json(raw))


def decode_event_lines(raw: bytes) -> list[dict]:
    """The events one line of an events file stands for, validated and normalised, or raise
    SpoolError: our own line is one event; an OpenLineage RunEvent is mapped by
    dashboard.openlineage (a START is two status events; a DAG's tree is task definitions)."""
    decoded = _decode_json(raw)
    if not openlineage.is_openlineage(decoded):
        return [parse_event(decoded)]
    try:
        events = openlineage.to_events(decoded)
    except openlineage.OpenLineageError as exc:
        raise SpoolError(str(exc)) from None
    return [parse_event(event) for event in events]


def _decode_json(raw: bytes) -> object:
    """The JSON value of an event line, or raise SpoolError.

    The line must be UTF-8 (a byte order mark before it is allowed) and strict JSON: no NaN or
    Infinity, nested at most MAX_NESTING deep. A field given twice counts the first time (as
    DuckDB's JSON reader has it).
    """
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise SpoolError("not valid UTF-8") from None
    if text.count("[") + text.count("{") > MAX_NESTING and _nesting(text) > MAX_NESTING:
        raise SpoolError(f"not an event: arrays or objects nested over {MAX_NESTING} deep")
    try:
        decoded = json.loads(text, object_pairs_hook=_first_field_wins, parse_constant=_refuse_constant,
                             parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise SpoolError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:  # not reached under MAX_NESTING; kept so no line can stop the ingest
        raise SpoolError(f"not an event: arrays or objects nested over {MAX_NESTING} deep") from None
    return decoded


def new_run_id(prefix: str = "r") -> str:
    """A fresh, sortable run id such as r-20261128T120003123-3f9a1c."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3]
    return f"{prefix}-{now}-{secrets.token_hex(3)}"


class SpoolWriter:
    """Appends events and log bytes to a spool; each writer owns its own events file.

    Every event is one whole line written by a single append, so several writers (and
    several threads of one writer) never interleave partial lines.
    """

    def __init__(self, spool: str | Path, name: str = "writer"):
        self.spool = Path(spool)
        events_dir(self.spool).mkdir(parents=True, exist_ok=True)
        logs_dir(self.spool).mkdir(parents=True, exist_ok=True)
        safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:40]
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        unique = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self.events_path = events_dir(self.spool) / f"{safe_name}-{stamp}-{unique}.jsonl"
        self._fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def append_event(self, event: dict) -> None:
        """Validate and append one event as a JSON line; raise SpoolError if it is invalid, and
        SpoolWriteError (leaving nothing of it) if the spool cannot take it."""
        parse_event(event)
        self._append((json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))

    def append_lines(self, lines: list[bytes]) -> None:
        """Append event lines already validated (each without its newline) with one write, and
        have them on disk (fsync) before returning: whoever is told they were taken loses none
        in a crash. Raise SpoolWriteError, leaving nothing of them, if the spool cannot take them."""
        self._append(b"".join(line + b"\n" for line in lines), durable=True)

    def _append(self, data: bytes, durable: bool = False) -> None:
        with self._lock:
            start = os.fstat(self._fd).st_size  # this writer's own file: where the lines go
            try:
                written = 0
                while written < len(data):  # a full disk cuts a write short, then fails the next
                    written += os.write(self._fd, data[written:])
                if durable:
                    os.fsync(self._fd)
            except OSError as exc:
                os.ftruncate(self._fd, start)  # no half line, which a later line would be glued to
                raise SpoolWriteError(exc.errno, f"cannot write to the spool: {self.events_path}: "
                                                 f"{exc.strerror}") from exc

    def define_task(self, task: str, group: str | None = None, depends_on=(), description=None) -> None:
        """Announce (or replace) a task definition."""
        self.append_event({"kind": "task", "task": task, "group": group,
                           "depends_on": list(depends_on), "description": description})

    def status(self, run_id: str, task: str, status: str, *, agent: str | None = None,
               adhoc: bool = False, ts: dt.datetime | None = None, **optional) -> None:
        """Record a status change of a run; optional: group, trigger_time, exit_code, message."""
        event = {"kind": "status", "run_id": run_id, "task": task, "status": status,
                 "ts": format_timestamp(ts), "agent": agent, "adhoc": adhoc}
        for key, value in optional.items():
            if value is not None:
                event[key] = format_timestamp(value) if isinstance(value, dt.datetime) else value
        self.append_event(event)

    def log_path(self, run_id: str, stream: str) -> Path:
        """The log file of a run's stream, with its folder created."""
        path = log_path(self.spool, run_id, stream)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def append_log(self, run_id: str, stream: str, data: bytes | str) -> None:
        """Append raw output to a run's stdout or stderr log."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        with open(self.log_path(run_id, stream), "ab") as handle:
            handle.write(data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
