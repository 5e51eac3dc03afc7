"""A throwaway nginx in front of test servers, configured by the file the product ships
(data/nginx/taskdash.conf) with the test's ports: in the foreground (no daemon), on 127.0.0.1 and a
free port, its pid, logs and temporary files in a temporary folder; as root its workers run as
`nobody` (nginx's default), as any other user as that user.

`Nginx(upstreams).start()` returns once nginx accepts connections; `stop()` ends it and removes
its folder. `access()` reads its access log: one `Request` per line, with the route id the
shipped file hashed and the server that answered.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from helpers import wait_until
from serving import free_port

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data" / "nginx" / "taskdash.conf"
#: The response header the tests add to the shipped file: which server answered (nginx's
#: $upstream_addr: the servers tried, the last one answered). Not shipped: it would show a
#: server's internal address to every visitor.
UPSTREAM_HEADER = "X-Upstream"
#: The access log's format: route id, servers tried, status, request line (tab-separated).
LOG_FORMAT = r"$taskdash_route\t$upstream_addr\t$status\t$request"


def nginx_binary() -> str | None:
    """nginx on PATH, else Debian's (/usr/sbin is not on every user's PATH); None if there is none."""
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def rendered(upstreams: list[str], port: int) -> str:
    """The shipped file with the test's servers, listening on 127.0.0.1:`port`, and each answer
    naming its server (UPSTREAM_HEADER). Fails if the file no longer has the lines it replaces."""
    text = SHIPPED.read_text(encoding="utf-8")
    servers = re.findall(r"^ *server 127\.0\.0\.1:\d+ (.*);$", text, flags=re.M)
    assert len(servers) == 2, "data/nginx/taskdash.conf: the upstream's example server lines changed"
    text = re.sub(r"^( *)server 127\.0\.0\.1:\d+ .*;\n", "", text, flags=re.M)
    text = text.replace("    hash $taskdash_route consistent;\n", "    hash $taskdash_route consistent;\n"
                        + "".join(f"    server {address} {servers[0]};\n" for address in upstreams), 1)
    listen = re.search(r"^ *listen 8080;.*$", text, flags=re.M)
    cookie = "        add_header Set-Cookie $taskdash_route_cookie always;\n"
    assert listen and cookie in text and text.count("hash $taskdash_route consistent;") == 1, \
        "data/nginx/taskdash.conf: the lines the tests fill in changed"
    text = text.replace(listen[0], f"    listen 127.0.0.1:{port};", 1)
    return text.replace(cookie, cookie + f"        add_header {UPSTREAM_HEADER} $upstream_addr always;\n", 1)


def main_config(folder: Path, site: Path) -> None:
    """nginx.conf in `folder`, for a process in the foreground with everything it writes there
    (pid, logs, temporary files), holding `site` in its http block."""
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                            "scgi"))
    (folder / "nginx.conf").write_text(f"""daemon off;
worker_processes 1;
pid {folder / 'nginx.pid'};
error_log {folder / 'error.log'} notice;
events {{ worker_connections 512; }}
http {{
    log_format routes "{LOG_FORMAT}";
    access_log {folder / 'access.log'} routes;
{temp}
    include {site};
}}
""")


def command(binary: str, folder: Path) -> list[str]:
    """nginx with the configuration main_config wrote in `folder` (-e: not even its first message
    goes to the error log compiled in, which only root may write)."""
    return [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")]


@dataclass
class Request:
    route: str
    upstream: str  # the server that answered (the last nginx tried)
    status: int
    line: str


class Nginx:
    """One nginx process in its own temporary folder, balancing over `upstreams` (host:port)."""

    def __init__(self, upstreams: list[str], port: int | None = None):
        self.upstreams = upstreams
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Not under pytest's tmp_path (0700): as root, nginx's workers (nobody) write temporary files here.
        self.folder = Path(tempfile.mkdtemp(prefix="taskdash-nginx-"))
        self.folder.chmod(0o755)
        self.process: subprocess.Popen | None = None

    def start(self) -> Nginx:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (bash .ci/run installs Debian's nginx)")
        site = self.folder / "taskdash.conf"
        site.write_text(rendered(self.upstreams, self.port))
        main_config(self.folder, site)
        self.process = subprocess.Popen(
            command(binary, self.folder), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)

        def listening() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx did not start:\n{self.process.communicate()[0]}{self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(listening, timeout=30, interval=0.05, message="nginx to listen")
        return self

    def errors(self) -> str:
        log = self.folder / "error.log"
        return log.read_text() if log.exists() else ""

    def access(self) -> list[Request]:
        """Every request nginx has logged (a websocket's once it has closed), in order."""
        log = self.folder / "access.log"
        requests = []
        for line in (log.read_text().splitlines() if log.exists() else []):
            route, upstream, status, request = line.split("\t", 3)
            requests.append(Request(route, upstream.split(",")[-1].strip(), int(status), request))
        return requests

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown: open websockets are cut
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.process.communicate()
        shutil.rmtree(self.folder, ignore_errors=True)
