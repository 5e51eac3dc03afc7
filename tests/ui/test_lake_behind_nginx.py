"""Many machines on one: three spool "hosts" shipped by three `taskdash ship` processes at once,
two lake-mode `taskdash serve` processes behind nginx configured by the shipped file
(data/nginx/taskdash.conf, tests/nginx.py), and Chromium sessions through nginx on each server."""

from __future__ import annotations

import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest
from builders import write_host_spool
from helpers import wait_until
from nginx import UPSTREAM_HEADER, Nginx
from playwright.sync_api import expect
from serving import DashboardServer, free_port, ship, stopped

from dashboard.spool import SpoolWriter

HOSTS = ("east", "west", "north")
COOKIE = "taskdash_route"


def row(page, run_id: str):
    return page.locator(".tabulator-row", has=page.locator(f'a.td-eye[href$="/{run_id}"]'))


def status_of(page, run_id: str):
    return row(page, run_id).locator('.tabulator-cell[tabulator-field="status"]')


def through(nginx: Nginx, route: str | None) -> tuple[str, str | None]:
    """The server nginx sends a request with this route cookie to (None: no cookie), and the
    cookie its answer sets."""
    headers = {"Cookie": f"{COOKIE}={route}"} if route else {}
    request = urllib.request.Request(nginx.url + "/liveness", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.headers[UPSTREAM_HEADER], answer.headers.get("Set-Cookie")


def answered_by(response) -> str:
    """The server that answered a response through nginx (the last one it tried)."""
    return response.headers[UPSTREAM_HEADER.lower()].split(",")[-1].strip()


@pytest.mark.lake
@pytest.mark.timeout(300)
def test_two_servers_behind_nginx_show_every_host_live_and_a_killed_one_fails_over(lake, tmp_path, browser):
    spools = {host: tmp_path / host / "spool" for host in HOSTS}
    for host, spool in spools.items():
        write_host_spool(spool, host, range(3), lines=5)
    port = free_port()
    outputs: dict[str, str] = {}
    with ExitStack() as stack:
        ships = {host: ship(spool, lake.catalog, Path(lake.data_path), host) for host, spool in spools.items()}
        stack.callback(lambda: outputs.update({host: stopped(process) for host, process in ships.items()}))
        servers = []
        stack.push(lambda *failure: failure[0] and print(*(f"---- server {n} output ----\n" + "".join(server.output)
                                                          for n, server in enumerate(servers, 1)), sep="\n"))
        for name in ("one", "two"):  # each in a folder of its own, with an empty spool: all comes from the lake
            (tmp_path / name).mkdir()
            server = DashboardServer(tmp_path / name, "--catalog", lake.catalog, "--data-path", lake.data_path,
                                     "--allow-websocket-origin", f"127.0.0.1:{port}", wait=False)
            stack.callback(server.stop)
            servers.append(server)
        for server in servers:
            server.url = server.wait_for_url()
        address = {server.url.removeprefix("http://"): server for server in servers}
        nginx = Nginx(list(address), port).start()
        stack.callback(nginx.stop)
        stack.push(lambda *failure: failure[0] and print("---- nginx's error log ----\n" + nginx.errors()))

        # A browser without the cookie is given one, and nginx keeps sending it where it sent it first.
        first, cookie = through(nginx, None)
        assert cookie and cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
        route = cookie.split(";")[0].split("=", 1)[1]
        assert through(nginx, route) == (first, None)  # one cookie is set once, not with every answer
        # Routes to each server (nginx hashes the cookie: which server an id leads to is found by asking).
        routes = {}
        for n in range(200):
            routes.setdefault(through(nginx, f"probe-{n}")[0], f"probe-{n}")
            if len(routes) == 2:
                break
        assert set(routes) == set(address), f"nginx sent 200 routes to {set(routes)} only"

        # Session A: a new browser, wherever nginx puts it. Session B: pinned to the other server.
        context_a, context_b = browser.new_context(), browser.new_context()
        stack.callback(context_b.close)
        stack.callback(context_a.close)
        page_a, page_b = context_a.new_page(), context_b.new_page()
        server_a = answered_by(page_a.goto(f"{nginx.url}/task-runs"))
        server_b = next(other for other in address if other != server_a)
        context_b.add_cookies([{"name": COOKIE, "value": routes[server_b], "url": nginx.url}])
        assert answered_by(page_b.goto(f"{nginx.url}/task-runs")) == server_b
        route_a = next(c["value"] for c in context_a.cookies() if c["name"] == COOKIE)

        for page in (page_a, page_b):  # each server shows what every host shipped
            expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=60_000)
            for run_id in ("east-0001", "west-0002", "north-0000"):
                expect(status_of(page, run_id)).to_have_text("SUCCESS" if run_id != "north-0000" else "FAILED",
                                                             timeout=60_000)
            page.evaluate("window.__no_reload_marker = true")
        # A run written on one host reaches both sessions live.
        write_host_spool(spools["north"], "north", range(7, 8), lines=5)
        for page in (page_a, page_b):
            expect(status_of(page, "north-0007")).to_have_text("SUCCESS", timeout=60_000)
            assert page.evaluate("window.__no_reload_marker === true"), "the page was reloaded"

        # A run under way on west when B's server is killed (no shutdown of any kind).
        west = SpoolWriter(spools["west"], "west")
        for status in ("TRIGGER", "STARTED", "RUNNING"):
            west.status("west-0100", "west_task_long", status, agent="agent-west")
        west.append_log("west-0100", "stdout", "first half\n")
        for page in (page_a, page_b):
            expect(status_of(page, "west-0100")).to_have_text("RUNNING", timeout=60_000)
        address[server_b].kill()
        west.append_log("west-0100", "stdout", "second half\n")
        west.status("west-0100", "west_task_long", "SUCCESS", agent="agent-west", exit_code=0)
        write_host_spool(spools["east"], "east", range(8, 9), lines=5)

        # A sees it all live, on its server; B's page comes back by itself through nginx on A's server.
        expect(status_of(page_a, "west-0100")).to_have_text("SUCCESS", timeout=60_000)
        expect(status_of(page_a, "east-0008")).to_have_text("SUCCESS", timeout=60_000)
        assert page_a.evaluate("window.__no_reload_marker === true"), "A's page was reloaded"
        expect(status_of(page_b, "west-0100")).to_have_text("SUCCESS", timeout=60_000)
        expect(page_b.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=60_000)
        # A reload through nginx reaches the server left and shows everything: nothing was lost.
        response = page_b.reload()
        assert answered_by(response) == server_a
        runs = 3 * len(HOSTS) + 3  # and north-0007, west-0100, east-0008
        expect(page_b.get_by_text(f"of {runs} runs")).to_be_visible(timeout=60_000)
        expect(status_of(page_b, "west-0100")).to_have_text("SUCCESS", timeout=60_000)
        expect(status_of(page_b, "east-0008")).to_have_text("SUCCESS", timeout=60_000)
        page_b.screenshot(path=str(tmp_path / "failed-over.png"))
        page_b.goto(f"{nginx.url}/task-runs/west-0100")  # the log written on both sides of the kill
        expect(page_b.get_by_text("second half")).to_be_visible(timeout=60_000)
        expect(page_b.get_by_text("first half")).to_be_visible()

        # nginx's log: every request of A's browser, its websocket included, reached one server;
        # B's went to its own until it was killed, then to A's.
        context_a.close()
        context_b.close()
        wait_until(lambda: {r.route for r in nginx.access() if r.status == 101} >= {route_a, routes[server_b]},
                   timeout=30, message="the websockets to close")
        requests = nginx.access()
        assert {r.upstream for r in requests if r.route == route_a} == {server_a}
        b_upstreams = [r.upstream for r in requests if r.route == routes[server_b]]
        switched = b_upstreams.index(server_a)
        assert set(b_upstreams[:switched]) == {server_b} and set(b_upstreams[switched:]) == {server_a}, b_upstreams
        assert {r.upstream for r in requests if r.route == routes[server_b] and r.status == 101} == {server_a,
                                                                                                   server_b}
    assert all("Traceback" not in output for output in outputs.values()), outputs
