"""Real dashboard servers for browser tests and benchmarks (a `taskdash serve` subprocess, or in
this process), stopped by whoever started them; and how Chromium is started for them."""

from __future__ import annotations

import concurrent.futures
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from helpers import wait_until

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: Evaluated on the log box (`.td-log`): notes when each probe line is added to the log viewer,
#: window.__probes["probe <time> <n>"] = ms since the epoch. For the load test and the benchmark.
LOG_LINE_PROBE = """log => {
  window.__probes = {}
  const seen = window.__probes
  window.__observer = new MutationObserver(records => {
    const now = performance.timeOrigin + performance.now()
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.nodeType !== 1 || !node.classList.contains("td-line")) continue
        const text = (node.querySelector(".td-text") || node).textContent
        if (text.startsWith("probe ") && !(text in seen)) seen[text] = now
      }
    }
  })
  window.__observer.observe(log, {childList: true})
}"""


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process's whole process group (gone already: nothing to do)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class DashboardServer:
    """A `taskdash serve` subprocess on a free port; its output is kept for failure reports.

    It runs in `tmp_path`, on the spool and index there unless `spool` and `index` say otherwise,
    with the repository's panel_serve.yaml unless `config` names another settings file.
    """

    def __init__(self, tmp_path: Path, *extra: str, wait: bool = True, spool: Path | None = None,
                 index: Path | None = None, config: Path | None = None):
        self.spool = spool or tmp_path / "spool"
        self.output: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli", "--config", str(config or REPO / "panel_serve.yaml"), "serve",
             "--port", "0", "--spool", str(self.spool), "--index", str(index or tmp_path / "index.duckdb"), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, cwd=tmp_path)
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self.wait_for_url() if wait else None

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self._lines.put(line)

    def wait_for_url(self, timeout: float = 60) -> str:
        """The server's address, once it says it listens."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError("the server did not start:\n" + "".join(self.output)) from None
            match = re.search(r"Task Runs Dashboard: (http://\S+?)/task-runs", line)
            if match:
                return match[1]

    def wait_for_output(self, text: str, timeout: float = 60) -> str:
        """The first line of output containing `text`, once the server prints it."""
        return wait_until(lambda: next((line for line in list(self.output) if text in line), None),
                          timeout=timeout, interval=0.05, message=f"the server to print {text!r}")

    def kill(self) -> None:
        """SIGKILL the server's whole process group: no shutdown of any kind."""
        kill_group(self.process)
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # anything the server left behind
        except ProcessLookupError:
            pass
        self.process.wait()
        self.process.stdout.close()


@contextmanager
def dashboard_server(tmp_path: Path, *extra: str, **options):
    server = DashboardServer(tmp_path, *extra, **options)
    try:
        yield server
    except BaseException:
        print("---- server output ----\n" + "".join(server.output))
        raise
    finally:
        server.stop()


def indexed_lines(server: DashboardServer, run_id: str, stream: str = "stdout") -> int | None:
    """How many lines of a run's stream the running server's index holds (its log download says so),
    or None if it has no such run."""
    try:
        with urllib.request.urlopen(f"{server.url}/task-runs/{run_id}/logs/{stream}.log", timeout=10) as response:
            return int(response.headers["X-Indexed-Lines"])
    except urllib.error.HTTPError:
        return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def plain_get(url: str) -> bool:
    """A GET of a page that never connects (as a link preview or a crawler makes): its session ends
    when Bokeh finds it unused. Whether the page answered 200."""
    with urllib.request.urlopen(url, timeout=120) as response:
        response.read()
        return response.status == 200


def responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def served_in_process(spool: Path, index: Path, **server_options):
    """The dashboard served from this process (its services inspectable), stopped on exit."""
    from dashboard import app, services
    from dashboard.config import Config

    config = Config(spool=spool, index=index, port=free_port())
    server = app.serve(config, threaded=True, **server_options)
    url = f"http://127.0.0.1:{config.port}"
    try:
        wait_until(lambda: responds(url + "/liveness"), timeout=30, message="the server to listen")
        yield url, services.services()
    finally:
        server.stop()
        server.join(10)
        services.stop_services()


@contextmanager
def served_component(build, **server_options):
    """One component alone, as Panel's own tests serve one (`serve_component`): `build()` makes
    it for each session, on a free port of this process (Bokeh's `server_options`); stopped on exit."""
    import panel as pn

    def app():
        pn.extension("tabulator")
        return build()

    port = free_port()
    server = pn.serve({"/": app}, port=port, threaded=True, show=False, liveness=True, **server_options)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: responds(url + "/liveness"), timeout=30, message="the component's server to listen")
        yield url
    finally:
        server.stop()
        server.join(10)


def on_client_loop(loop, look, timeout: float = 60):
    """`look()` run on a Bokeh client session's loop (between two changes from the server), its
    answer (or exception) handed back to this thread."""
    result = concurrent.futures.Future()

    def call() -> None:
        try:
            result.set_result(look())
        except Exception as exc:  # noqa: BLE001
            result.set_exception(exc)

    loop.add_callback(call)
    return result.result(timeout=timeout)


def block_other_hosts(page, url: str) -> list[str]:
    """Let `page` load only from `url`'s host (and data:/blob: URLs); return the list that
    collects every other address it asked for (each refused)."""
    own = urlsplit(url).netloc
    elsewhere: list[str] = []

    def only_own(route):
        if urlsplit(route.request.url).netloc == own or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_own)
    return elsewhere


def ship(spool: Path, catalog: str, data_path: Path, host: str) -> subprocess.Popen:
    """A `taskdash ship` process of one spool "host" into a lake (its password in the environment)."""
    return subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "ship", "--spool", str(spool), "--catalog", catalog,
         "--data-path", str(data_path), "--host", host],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, cwd=spool.parent)


def stopped(process: subprocess.Popen) -> str:
    """Stop a process as Ctrl-C or systemd would (SIGTERM); return all it printed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.communicate()[0]


#: The bearer token the tests' receivers are started with.
RECEIVE_TOKEN = "test-token-" + "0123456789abcdef"


class ReceiverProcess:
    """A `taskdash receive` subprocess on a free port of 127.0.0.1, appending to `spool`; its output
    is kept for failure reports. `url` is its base address, `events_path` the file it appends to.
    `prefix` runs it under another command (`prlimit`, say)."""

    def __init__(self, spool: Path, *extra: str, token: str = RECEIVE_TOKEN, prefix: tuple[str, ...] = ()):
        self.spool = spool
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "dashboard.cli", "receive", "--spool", str(spool), "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "TASKDASH_RECEIVE_TOKEN": token})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        started = wait_until(lambda: next((re.search(r"(https?://\S+)/api/v1/lineage .* appending to (\S+)", line)
                                           for line in list(self.output) if "appending to" in line), None)
                             or self.process.poll() is not None, timeout=60, message="the receiver to listen")
        if started is True:
            raise AssertionError("the receiver did not start:\n" + "".join(self.output))
        self.url, self.events_path = started[1], Path(started[2])

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    def kill(self) -> None:
        """SIGKILL the receiver: no shutdown of any kind."""
        kill_group(self.process)
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._reader.join(10)
        self.process.stdout.close()


@contextmanager
def receiving(spool: Path, *extra: str):
    """A `taskdash receive` process for the block; its output printed if the block failed."""
    receiver = ReceiverProcess(spool, *extra)
    try:
        yield receiver
    except BaseException:
        print("---- receiver output ----\n" + "".join(receiver.output))
        raise
    finally:
        receiver.stop()


class AlertReceiver:
    """A webhook receiver on a free port of 127.0.0.1 (a plain `http.server` on a thread): keeps
    each JSON body POSTed with when it arrived, and answers with the statuses `answers` lists
    (then 200). Close it when done."""

    def __init__(self, answers: tuple[int, ...] = ()):
        import json
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[tuple[float, dict]] = []  # (time.monotonic() on arrival, body)
        self.headers: list[dict] = []
        self._answers = list(answers)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver._answers.pop(0) if receiver._answers else 200
                if status == 200:
                    receiver.received.append((time.monotonic(), body))
                    receiver.headers.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self, **matching) -> list[dict]:
        """The bodies received whose fields have the given values."""
        return [body for _, body in list(self.received) if all(body.get(k) == v for k, v in matching.items())]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
