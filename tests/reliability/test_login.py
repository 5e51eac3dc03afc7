"""Logging in (issue 23): only a path of this site may follow a login, wrong passwords are
throttled, and a user removed from the users file loses access on their next session. Against
a real `taskdash serve` process with Panel's basic auth from a users file, over real HTTP and
websocket clients."""

from __future__ import annotations

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Page, expect
from serving import block_other_hosts, dashboard_server
from test_access import (DOWNLOAD, follow, log_in, logged_in, page_token, pull_document, request, settings_file,
                         shows_the_run, wait_for_the_run, write_spool)

from dashboard.login import MAX_FAILURES

#: `next` values that led, or could lead, a browser off the site after logging in.
OFF_SITE = ["///evil.example/x", "//evil.example/x", "/\\evil.example/x", "/\t/evil.example/x",
            "https://evil.example/x", "/\n/evil.example/x", "\\\\evil.example/x"]


@pytest.fixture(scope="module")
def login_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("login")
    write_spool(folder)
    users = {name: secrets.token_urlsafe(12) for name in ("alice", "bob", "carol")}
    users_file = folder / "users.json"
    users_file.write_text(json.dumps(users), encoding="utf-8")
    settings = settings_file(folder, access={"users_file": "users.json", "cookie_secret": secrets.token_urlsafe(32)})
    with dashboard_server(folder, "--config", settings) as server:
        wait_for_the_run(server.url, log_in(server.url, "alice", users["alice"])[0])
        yield server, users, users_file


def test_only_a_path_of_this_site_may_follow_a_login(login_server):
    server, users, _ = login_server
    base = server.url
    for next_url in OFF_SITE:
        cookies = SimpleCookie()
        form = request(f"{base}/login?next={quote(next_url, safe='')}", cookies=cookies)
        reply = request(f"{base}/login", "POST", cookies, {"username": "alice", "password": users["alice"]})
        where = reply.headers.get("Location", "")
        print(f"next={next_url!r}: login form {form.status}, after logging in {reply.status} → {where!r}")
        assert form.status == 400
        assert reply.status == 302 and where.startswith("/") and where[1:2] not in ("/", "\\"), where
        forged = SimpleCookie({**{k: v.value for k, v in cookies.items()}, "next_url": next_url})
        reply = request(f"{base}/login", "POST", forged, {"username": "alice", "password": users["alice"]})
        print(f"  with next_url={next_url!r} put in the cookie by hand: {reply.status}")
        assert reply.status == 400 and "evil.example" not in reply.headers.get("Location", "")
    cookies = SimpleCookie()
    request(f"{base}/login?next={quote('/tasks?group=finance', safe='')}", cookies=cookies)
    reply = request(f"{base}/login", "POST", cookies, {"username": "alice", "password": users["alice"]})
    assert reply.status == 302 and reply.headers["Location"] == "/tasks?group=finance"
    print("next=/tasks?group=finance: logged in and sent there")


def test_wrong_passwords_are_throttled(login_server):
    server, users, _ = login_server
    base = server.url

    def attempt(n: int) -> str:
        _, reply = log_in(base, "carol", f"guess-{n}")
        return parse_qs(urlsplit(reply.headers["Location"]).query)["error"][0]

    start = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(attempt, range(50)))
    took = time.monotonic() - start
    checked = sum(a.startswith("Invalid") for a in answers)
    refused = sum(a.startswith("Too many wrong passwords") for a in answers)
    print(f"50 wrong passwords for carol, 10 at a time: {took:.1f} s; {checked} checked (each answered after 1 s), "
          f"{refused} refused unchecked")
    assert checked == MAX_FAILURES and refused == 50 - MAX_FAILURES
    cookies, reply = log_in(base, "carol", users["carol"])
    error = parse_qs(urlsplit(reply.headers["Location"]).query)["error"][0]
    print(f"then carol's right password: {error}")
    assert not logged_in(cookies) and error.startswith("Too many wrong passwords: try again in")
    cookies, _ = log_in(base, "bob", users["bob"])
    assert logged_in(cookies), "another user logs in meanwhile"
    print("bob, from the same address, logs in meanwhile")


def test_a_user_removed_from_the_users_file_loses_access_on_the_next_session(login_server):
    server, users, users_file = login_server
    base = server.url
    cookies, _ = log_in(base, "bob", users["bob"])
    token = page_token(base, "/task-runs", cookies)
    assert shows_the_run(pull_document(base, "/task-runs/ws", base, cookies, token))
    remaining = {name: password for name, password in users.items() if name != "bob"}
    users_file.write_text(json.dumps(remaining), encoding="utf-8")
    try:
        for route in ("/task-runs", DOWNLOAD):
            replies, stopped_at = follow(base + route, cookies)
            print(f"bob removed from the users file, GET {route} with his cookie → {stopped_at}")
            assert stopped_at.startswith(f"{base}/login") and not any(r.leaks for r in replies)
        assert pull_document(base, "/task-runs/ws", base, cookies, token) == 403
        print("  his page's websocket, with the token it got before: 403")
        alice, _ = log_in(base, "alice", users["alice"])
        assert request(base + DOWNLOAD, cookies=alice).status == 200
        assert not logged_in(log_in(base, "bob", users["bob"])[0])
        print("alice keeps access; bob cannot log in again")
    finally:
        users_file.write_text(json.dumps(users), encoding="utf-8")


def test_the_login_and_logout_pages_ask_nothing_of_another_host(login_server, page: Page):
    server, users, _ = login_server
    elsewhere = block_other_hosts(page, server.url)
    page.goto(server.url + "/tasks")
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', users["alice"])
    page.click('button[type="submit"]')
    expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=60_000)
    page.goto(server.url + "/logout")
    expect(page.locator("#logo")).to_be_visible()
    assert page.evaluate("document.querySelector('#logo').naturalWidth") > 0, "the logo is served by the dashboard"
    page.wait_for_load_state("networkidle")
    print(f"login, /tasks and logout pages: requests for other hosts: {elsewhere or 'none'}")
    assert elsewhere == []
