"""Who can reach the server (issue 8, security), against real `taskdash serve` processes with
real HTTP and websocket clients and Chromium:

- by default it listens on 127.0.0.1 only, and its websocket refuses pages of other origins;
- with access control on (panel_serve.yaml's access section: Panel's basic auth or an OAuth
  provider), every page, the websocket and the log download need a login first, and show
  nothing of the runs before it;
- no route changes anything: the pages only read, so anything but GET is refused.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import psutil
import pytest
import yaml
from helpers import wait_until
from playwright.sync_api import expect
from serving import dashboard_server
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.web import create_signed_value
from tornado.websocket import websocket_connect

from dashboard.config import ConfigError, load_config
from dashboard.spool import SpoolWriter

RUN_ID = "r-access-1"
TASK = "Reconcile_Ledger_Access"
LOG_TEXT = "ledger balanced after 4812 entries"
EVIL_ORIGIN = "http://evil.example:1234"
DOWNLOAD = f"/task-runs/{RUN_ID}/logs/stdout.log"
#: Every route a visitor can GET: the home redirect, the pages (with a query), the log downloads, a page's metadata.
ROUTES = ["/", "/task-runs", f"/task-runs/{RUN_ID}", f"/task-runs/{RUN_ID}?stream=stdout&line=1", "/tasks",
          "/timeline?by=agent", DOWNLOAD, f"/task-runs/{RUN_ID}/logs/stderr.log", "/task-runs/metadata",
          f"/compare?a={RUN_ID}&b=r-other"]
#: Each page and the websocket its browser session talks over.
PAGE_WEBSOCKETS = [("/task-runs", "/task-runs/ws"), (f"/task-runs/{RUN_ID}", f"/task-runs/{RUN_ID}/ws"),
                   ("/tasks", "/tasks/ws"), ("/timeline", "/timeline/ws")]
#: The environment variables Panel reads access secrets from (tests that must not see the developer's own).
SECRET_VARIABLES = ("PANEL_COOKIE_SECRET", "BOKEH_COOKIE_SECRET", "PANEL_OAUTH_KEY", "PANEL_OAUTH_SECRET",
                    "PANEL_OAUTH_REDIRECT_URI", "PANEL_OAUTH_EXTRA_PARAMS")


def write_spool(folder) -> bytes:
    """A finished run with a log, in the spool a DashboardServer on `folder` serves; its stdout bytes."""
    writer = SpoolWriter(folder / "spool", "access-test")
    writer.define_task(TASK, "finance")
    for status in ("TRIGGER", "RUNNING"):
        writer.status(RUN_ID, TASK, status, agent="agent-1")
    writer.append_log(RUN_ID, "stdout", f"{LOG_TEXT}\n")
    writer.append_log(RUN_ID, "stderr", "WARN one slow entry\n")
    writer.status(RUN_ID, TASK, "SUCCESS", agent="agent-1", exit_code=0)
    return (folder / "spool" / "logs" / RUN_ID / "stdout.log").read_bytes()


def settings_file(folder, **settings) -> str:
    path = folder / "settings.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return str(path)


@dataclass
class Reply:
    url: str
    status: int
    headers: http.client.HTTPMessage
    text: str

    @property
    def leaks(self) -> bool:
        """Whether the reply shows anything of the run: its task name or its log."""
        return TASK in self.text or LOG_TEXT in self.text


def cookie_header(cookies: SimpleCookie) -> str:
    return "; ".join(f"{name}={morsel.coded_value}" for name, morsel in cookies.items() if morsel.value)


def request(url: str, method: str = "GET", cookies: SimpleCookie | None = None, form: dict | None = None) -> Reply:
    """One HTTP request, redirects not followed; cookies the server sets are added to `cookies`."""
    parts = urlsplit(url)
    headers, body = {}, None
    if cookies:
        headers["Cookie"] = cookie_header(cookies)
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection = http.client.HTTPConnection(parts.netloc, timeout=60)
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                           headers=headers)
        response = connection.getresponse()
        reply = Reply(url, response.status, response.headers, response.read().decode("utf-8", "replace"))
    finally:
        connection.close()
    if cookies is not None:
        for header in reply.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
    return reply


def follow(url: str, cookies: SimpleCookie | None = None) -> tuple[list[Reply], str]:
    """GET url and the redirects after it while they stay on this server: the replies, and the URL
    it ends at (the last reply's, or the first one off this server). More than 6 hops fail."""
    server = urlsplit(url).netloc
    replies = []
    while len(replies) < 6:
        reply = request(url, cookies=cookies)
        replies.append(reply)
        if reply.status not in (301, 302, 303, 307, 308):
            return replies, url
        url = urljoin(url, reply.headers["Location"])
        if urlsplit(url).netloc != server:
            return replies, url
    raise AssertionError(f"redirected in a loop: {[r.url for r in replies]}")


def log_in(base: str, username: str, password: str) -> tuple[SimpleCookie, Reply]:
    """Log in as a browser does on Panel's login page (asked for /task-runs): the cookies held
    after posting the form, and the reply to the post."""
    cookies = SimpleCookie()
    request(f"{base}/login?next=%2Ftask-runs", cookies=cookies)
    reply = request(f"{base}/login", "POST", cookies, {"username": username, "password": password})
    return cookies, reply


def logged_in(cookies: SimpleCookie) -> bool:
    return "user" in cookies and bool(cookies["user"].value)


def page_token(base: str, path: str, cookies: SimpleCookie | None = None) -> str:
    """The session token a page's HTML gives its browser for the websocket."""
    reply = request(base + path, cookies=cookies)
    assert reply.status == 200, f"{path}: {reply.status}"
    return re.search(r'"token":\s*"([^"]+)"', reply.text)[1]


def pull_document(base: str, path: str, origin: str, cookies: SimpleCookie | None = None,
                  token: str | None = None, until: Callable[[str], bool] | None = None) -> str | int:
    """Open a page's websocket as its browser does (from `origin`, with the page's token) and pull
    the session's document: its JSON text, or the HTTP status that refused the handshake. With
    `until`, the changes the server sends after it too (a view built off the event loop arrives
    so), until `until(text)` holds."""
    async def pull():
        headers = {"Origin": origin, **({"Cookie": cookie_header(cookies)} if cookies else {})}
        connect = HTTPRequest(base.replace("http://", "ws://") + path, headers=headers, request_timeout=60)
        try:
            connection = await websocket_connect(connect, subprotocols=["bokeh", token] if token else None)
        except HTTPClientError as exc:
            return exc.code
        try:  # Bokeh's messages are three frames: header, metadata, content
            ack = [await connection.read_message() for _ in range(3)]
            assert json.loads(ack[0])["msgtype"] == "ACK", ack
            for frame in ('{"msgid": "pull-1", "msgtype": "PULL-DOC-REQ"}', "{}", "{}"):
                await connection.write_message(frame)
            async def message() -> tuple[dict, str]:
                header, _, content = [await connection.read_message() for _ in range(3)]
                header = json.loads(header)
                for _ in range(2 * header.get("num_buffers", 0)):  # each binary buffer: its header, its bytes
                    await connection.read_message()
                return header, content

            header, content = await message()
            assert header["msgtype"] == "PULL-DOC-REPLY", header
            while until is not None and not until(content):
                content += (await message())[1]
            return content
        finally:
            connection.close()
            while await connection.read_message() is not None:  # until the server's close frame: socket closed
                pass

    with ThreadPoolExecutor(1) as thread:  # its own event loop: Playwright's may be running in this thread
        return thread.submit(asyncio.run, asyncio.wait_for(pull(), 90)).result()


def shows_the_run(document: str | int) -> bool:
    """Whether a pulled document holds the run's task (not a refused handshake)."""
    return isinstance(document, str) and TASK in document


def wait_for_the_run(base: str, cookies: SimpleCookie | None = None) -> str:
    """The run's stdout as the server's download gives it, once the server has indexed the run."""
    def downloaded():
        reply = request(base + DOWNLOAD, cookies=cookies)
        return reply.text if reply.status == 200 else None
    return wait_until(downloaded, timeout=60, interval=0.2, message="the server to index the run")


def assert_login_required(base: str, end: str, cookies: SimpleCookie | None = None) -> None:
    """Every route leads (in a few redirects, showing nothing of the run) to `end`'s login page."""
    for route in ROUTES:
        replies, stopped_at = follow(base + route, cookies)
        print(f"  GET {route}: {' → '.join(str(r.status) for r in replies)} → {stopped_at}")
        assert not any(reply.leaks for reply in replies), f"{route} showed the run before login"
        assert stopped_at.startswith(end), f"{route} ended at {stopped_at}, not {end}"


def test_by_default_it_listens_on_loopback_only_and_refuses_other_origins_and_changes(tmp_path):
    log = write_spool(tmp_path)
    with dashboard_server(tmp_path) as server:
        port = urlsplit(server.url).port
        listening = [c.laddr for c in psutil.Process(server.process.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        print(f"listening sockets: {listening}")
        assert listening and all(address.ip == "127.0.0.1" for address in listening)
        other_addresses = [a.address for addresses in psutil.net_if_addrs().values() for a in addresses
                           if a.family == socket.AF_INET and not a.address.startswith("127.")]
        for address in other_addresses:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((address, port), timeout=10).close()
        print(f"connecting to port {port} on {other_addresses or 'no other address of this machine'}: refused")

        assert wait_for_the_run(server.url).encode() == log
        token = page_token(server.url, "/task-runs")
        allowed = f"http://localhost:{port}"  # the other name of the loopback address: not the page's own origin
        assert shows_the_run(pull_document(server.url, "/task-runs/ws", allowed, token=token))
        print(f"websocket from {allowed}: the document with the runs")
        for origin in (EVIL_ORIGIN, f"http://127.0.0.1:{port + 1}", f"http://192.0.2.99:{port}"):
            assert pull_document(server.url, "/task-runs/ws", origin, token=token) == 403
            print(f"websocket from {origin}: 403")

        spool_before = {p: p.read_bytes() for p in server.spool.rglob("*") if p.is_file()}
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for route in [*ROUTES, "/liveness", *(ws for _, ws in PAGE_WEBSOCKETS)]:
                reply = request(server.url + route, method)
                assert reply.status == 405 and not reply.leaks, f"{method} {route}: {reply.status}"
            print(f"{method} to {len(ROUTES) + 4} routes: 405")
        assert {p: p.read_bytes() for p in server.spool.rglob("*") if p.is_file()} == spool_before
        assert request(server.url + DOWNLOAD).text.encode() == log
        print("the spool and the download are as before")


def test_a_configured_websocket_origin_replaces_the_default_ones(tmp_path):
    write_spool(tmp_path)
    settings = settings_file(tmp_path, allow_websocket_origin=["dash.example.com:8443"])
    with dashboard_server(tmp_path, "--config", settings) as server:
        port = urlsplit(server.url).port
        wait_for_the_run(server.url)
        token = page_token(server.url, "/task-runs")
        assert shows_the_run(pull_document(server.url, "/task-runs/ws", "https://dash.example.com:8443", token=token))
        print("websocket from the configured https://dash.example.com:8443: the document with the runs")
        for origin in (f"http://localhost:{port}", "https://dash.example.com", EVIL_ORIGIN):
            assert pull_document(server.url, "/task-runs/ws", origin, token=token) == 403
            print(f"websocket from {origin}: 403")


@pytest.fixture(scope="module")
def basic_auth_server(tmp_path_factory):
    """A server with Panel's basic auth from a users file: the server, the users, the run's stdout."""
    folder = tmp_path_factory.mktemp("basic-auth")
    log = write_spool(folder)
    users = {"alice": secrets.token_urlsafe(12), "bob": secrets.token_urlsafe(12)}
    (folder / "users.json").write_text(json.dumps(users), encoding="utf-8")
    settings = settings_file(folder, access={"users_file": "users.json", "cookie_secret": secrets.token_urlsafe(32)})
    with dashboard_server(folder, "--config", settings) as server:
        yield server, users, log


def test_basic_auth_every_route_and_websocket_need_login(basic_auth_server):
    server, users, log = basic_auth_server
    base = server.url
    print("without a login cookie:")
    assert_login_required(base, f"{base}/login")
    assert 'name="password"' in follow(base + "/task-runs")[0][-1].text, "it ends on the login form"
    unsigned = SimpleCookie({"user": "alice"})
    wrongly_signed = SimpleCookie({"user": create_signed_value(secrets.token_urlsafe(32), "user", "alice").decode()})
    for forged in (unsigned, wrongly_signed):
        for route in (DOWNLOAD, "/task-runs"):
            replies, stopped_at = follow(base + route, SimpleCookie(forged))
            assert stopped_at.startswith(f"{base}/login") and not any(r.leaks for r in replies)
    print("a forged user cookie (unsigned, or signed with another secret): sent to the login page too")

    cookies, reply = log_in(base, "alice", users["alice"])
    assert logged_in(cookies) and reply.status == 302 and reply.headers["Location"] == "/task-runs"
    assert wait_for_the_run(base, cookies).encode() == log
    print("logged in as alice: the download gives the whole log")
    for page, websocket in PAGE_WEBSOCKETS:
        token = page_token(base, page, cookies)
        assert pull_document(base, websocket, base, token=token) == 403
        assert pull_document(base, websocket, base, wrongly_signed, token) == 403
        assert shows_the_run(pull_document(base, websocket, base, cookies, token, until=shows_the_run))
        print(f"  {websocket} with the page's token: 403 without the login cookie or with a forged one; "
              "the document with the run with it")
    for method in ("POST", "PUT", "DELETE"):
        for route in (DOWNLOAD, "/task-runs", f"/task-runs/{RUN_ID}", "/"):
            assert request(base + route, method, cookies).status == 405, f"{method} {route}"
    print("logged in, POST/PUT/DELETE to the pages and the download: 405")
    request(f"{base}/logout", cookies=cookies)
    replies, stopped_at = follow(base + DOWNLOAD, cookies)
    assert not logged_in(cookies) and stopped_at.startswith(f"{base}/login") and not any(r.leaks for r in replies)
    print("after /logout: the download leads to the login page again")


def test_basic_auth_refuses_a_wrong_password(basic_auth_server):
    server, users, _ = basic_auth_server
    for username, password in (("alice", users["bob"]), ("alice", ""), ("mallory", users["alice"]),
                               ("Alice", users["alice"])):
        cookies, reply = log_in(server.url, username, password)
        print(f"{username} with {'an empty' if not password else 'a wrong'} password: {reply.status} → "
              f"{reply.headers['Location']}")
        assert reply.status == 302 and "error=" in reply.headers["Location"]
        assert not logged_in(cookies)
        replies, stopped_at = follow(server.url + DOWNLOAD, cookies)
        assert stopped_at.startswith(f"{server.url}/login") and not any(r.leaks for r in replies)


def test_a_browser_logs_in_then_sees_the_pages_and_downloads_the_log(basic_auth_server, page, browser):
    server, users, log = basic_auth_server
    base = server.url
    page.goto(f"{base}/task-runs/{RUN_ID}")
    expect(page).to_have_url(re.compile(re.escape(f"{base}/login?next=")), timeout=30_000)
    page.fill('input[name="username"]', "bob")
    page.fill('input[name="password"]', users["bob"])
    page.click('button[type="submit"]')
    expect(page).to_have_url(f"{base}/task-runs/{RUN_ID}", timeout=30_000)
    expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=60_000)
    expect(page.locator(".td-card")).to_contain_text(TASK, timeout=60_000)
    expect(page.locator(".td-line").first).to_contain_text(LOG_TEXT)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download stdout").click()
    assert download.value.path().read_bytes() == log
    print("logged in through the login page: the run's page is live, its log shown and downloaded whole")

    page.goto(f"{base}/task-runs")
    expect(page.locator(".tabulator-row", has_text=TASK)).to_be_visible(timeout=60_000)
    page.goto(f"{base}/tasks")
    expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=60_000)
    expect(page.locator(".tabulator-cell", has_text=TASK).first).to_be_visible(timeout=60_000)
    print("/task-runs shows the run in its grid, /tasks the task")

    stranger = browser.new_context()
    try:
        response = stranger.request.get(base + DOWNLOAD)
        print(f"another browser, no login: the download ends at {response.url}")
        assert urlsplit(response.url).path == "/login" and LOG_TEXT not in response.text()
    finally:
        stranger.close()


def test_oauth_sends_every_route_to_the_provider(tmp_path, monkeypatch):
    write_spool(tmp_path)
    client_id = f"dashboard-{secrets.token_hex(4)}"
    monkeypatch.setenv("PANEL_OAUTH_KEY", client_id)  # secrets from the environment, not the file
    monkeypatch.setenv("PANEL_COOKIE_SECRET", secrets.token_urlsafe(32))
    settings = settings_file(tmp_path, access={"oauth_provider": "github", "oauth_secret": secrets.token_hex(16),
                                               "oauth_redirect_uri": "https://dash.example.com/login"})
    with dashboard_server(tmp_path, "--config", settings) as server:
        print("without a login cookie:")
        assert_login_required(server.url, "https://github.com/login/oauth/authorize?")
        authorize = follow(server.url + DOWNLOAD)[1]
        query = parse_qs(urlsplit(authorize).query)
        assert query["client_id"] == [client_id] and query["state"]
        assert query["redirect_uri"] == ["https://dash.example.com/login"]
        print(f"the provider is asked for client {client_id}, back to the configured redirect URI")
        forged = SimpleCookie({"user": create_signed_value(secrets.token_urlsafe(32), "user", "alice").decode()})
        for _, websocket in PAGE_WEBSOCKETS:
            assert pull_document(server.url, websocket, server.url) == 403
            assert pull_document(server.url, websocket, server.url, forged) == 403
        print("the websockets, without a login cookie or with a forged one: 403")


BAD_ACCESS = [
    ({"password": "open-sesame"}, "access.cookie_secret is required"),
    ({"password": "open-sesame", "cookie_secret": "too-short"}, "access.cookie_secret is too short"),
    ({"password": "open-sesame", "oauth_provider": "github"}, "set only one of password, users_file and "
                                                              "oauth_provider, not password and oauth_provider"),
    ({"oauth_provider": "myspace"}, "access.oauth_provider 'myspace' is not one of Panel's providers"),
    ({"oauth_provider": "github", "oauth_secret": "s3cret"}, "access.oauth_key is required"),
    ({"oauth_provider": "github", "oauth_key": "k", "oauth_secret": "s", "oauth_redirect_uri": "dash.example.com"},
     "access.oauth_redirect_uri must be an http(s) URL"),
    ({"users_file": "missing.json"}, "access.users_file"),
    ({"users_file": "users-list.json"}, "must hold a JSON object of user names to passwords"),
    ({"passwd": "open-sesame"}, "unknown setting access.passwd"),
    ({"password": 1234}, "access.password must be text"),
    ({"oauth_extra_params": ["TOKEN_URL"]}, "access.oauth_extra_params must be a mapping of text to text"),
]


def test_bad_access_settings_are_named(tmp_path, monkeypatch):
    for variable in SECRET_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "users-list.json").write_text('["alice"]', encoding="utf-8")
    cookie_secret = secrets.token_urlsafe(32)
    for access, expected in BAD_ACCESS:
        settings = settings_file(tmp_path, access={"cookie_secret": cookie_secret, **access}
                                 if "cookie_secret" not in expected else access)
        with pytest.raises(ConfigError) as error:
            load_config(settings).access.server_options()
        print(f"{access} → {error.value}")
        assert expected in str(error.value)
    for origins in ("dash.example.com:443", ["http://dash.example.com"], ["dash.example.com:https"]):
        with pytest.raises(ConfigError, match="allow_websocket_origin must be a list of host or host:port"):
            load_config(settings_file(tmp_path, allow_websocket_origin=origins))
        print(f"allow_websocket_origin {origins!r} → refused")

    monkeypatch.setenv("PANEL_COOKIE_SECRET", "short-from-the-environment")
    settings = settings_file(tmp_path, access={"password": "open-sesame", "cookie_secret": cookie_secret})
    with pytest.raises(ConfigError, match="too short"):
        load_config(settings).access.server_options()
    print("$PANEL_COOKIE_SECRET wins over the file's cookie_secret, and is checked too")

    monkeypatch.delenv("PANEL_COOKIE_SECRET")
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", "serve", "--config",
                             settings_file(tmp_path, access={"password": "open-sesame"}), "--port", "0", "--spool",
                             str(tmp_path / "spool"), "--index", str(tmp_path / "index.duckdb"), "--demo"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    print(f"taskdash serve without a cookie secret: exit {result.returncode}: {result.stderr.strip()}")
    assert result.returncode == 1 and "taskdash: access.cookie_secret is required" in result.stderr
    assert "Traceback" not in result.stderr and "Task Runs Dashboard:" not in result.stdout
    assert not (tmp_path / "spool").exists(), "the demo runner did not start"
