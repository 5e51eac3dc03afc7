"""Logging in with Panel's basic auth, made safe: where a login may lead, how fast passwords may
be guessed, and who may still come in.

- Only a path of this site may follow a login. Panel's check let `/login?next=///evil.example/x`
  through (no scheme, no host as Python parses it), and browsers read `///host` as a link to
  that host. Its check is wrapped for every login handler, basic and OAuth alike.
- Wrong passwords are throttled: each is answered after a second, and after `MAX_FAILURES`
  wrong passwords for one user name (`MAX_FAILURES_PER_ADDRESS` from one address) within
  `WINDOW` seconds, no password is checked for that name or address until the window has
  passed (before, 50 tries took 0.2 s).
- With a users file, a user removed from it loses access on the next page or session they
  open (the file is read again for each), not only when their login cookie expires.
- The login and logout pages take Panel's logo and favicon from this server, not from
  cdn.holoviz.org: the dashboard asks nothing of another host.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import re
import threading
import time
from pathlib import Path

import panel.auth
import tornado.escape
from panel.auth import STATE_COOKIE_NAME, BasicAuthProvider, BasicLoginHandler, LogoutHandler
from panel.config import config
from panel.io.resources import LOCAL_DIST
from panel.io.state import state
from tornado.web import HTTPError

log = logging.getLogger(__name__)

#: Wrong passwords for one user name, or from one address (an office behind one NAT address
#: has many users), that lock it out for the rest of the window.
MAX_FAILURES = 5
MAX_FAILURES_PER_ADDRESS = 20
WINDOW = 60.0
#: Each wrong password is answered this much later (the event loop serves others meanwhile).
DELAY = 1.0
#: A path of this site: one slash, then no slash or backslash (`//host`, `/\host` lead off the
#: site), and nothing a browser drops or reads as a separator (controls, spaces, backslashes).
_SAME_SITE = re.compile(r"/(?![/\\])[^\x00-\x20\x7f\\]*")

_panel_validate_next_url = panel.auth._validate_next_url


def same_site_path(next_url: str | None) -> str | None:
    """Panel's check of a login's `next` URL, and ours: HTTP 400 unless it is a path of this site."""
    if next_url and not _SAME_SITE.fullmatch(next_url):
        log.warning("refused a login's next URL that leads off the site: %r", next_url)
        raise HTTPError(400, "Invalid next url")
    return _panel_validate_next_url(next_url)


def install_next_url_check() -> None:
    """Make every Panel login handler (basic and OAuth) use `same_site_path` (upstream: Panel 1.9.4)."""
    panel.auth._validate_next_url = same_site_path


class Throttle:
    """Recent wrong passwords by key (a user name, an address); thread-safe."""

    def __init__(self, window: float = WINDOW):
        self.window = window
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, limits: dict[str, int]) -> float:
        """Seconds until each key may try a password again, given how many failures it may have (0: now)."""
        now = time.monotonic()
        with self._lock:
            waits = [0.0]
            for key, limit in limits.items():
                times = self._recent(key, now)
                if len(times) >= limit:
                    waits.append(times[-limit] + self.window - now)
            return max(waits)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        times = self._failures.setdefault(key, collections.deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:  # keeps the table as small as the keys with recent failures
            del self._failures[key]
            times = self._failures.setdefault(key, collections.deque())
        return times


def read_users(path: Path) -> dict[str, str]:
    """The users file as it is now ({} when it cannot be read: nobody gets in)."""
    try:
        users = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("the users file %s cannot be read: nobody can log in until it is fixed", path)
        return {}
    return users if isinstance(users, dict) else {}


def _local_assets() -> str:
    """Where this server serves Panel's images (the templates' PANEL_CDN)."""
    return state.base_url + LOCAL_DIST


class LoginHandler(BasicLoginHandler):
    """Panel's login form, with wrong passwords throttled and the users file read at each login."""

    password: str | None = None
    users_file: Path | None = None
    throttle = Throttle()

    def get(self):
        next_url = same_site_path(self.get_argument("next", state.base_url))
        if next_url:
            self.set_cookie("next_url", next_url)
        self.write(self._login_template.render(login_endpoint=self._login_endpoint,
                                               errormessage=self.get_argument("error", ""),
                                               PANEL_CDN=_local_assets()))

    def _validate(self, username: str, password: str) -> bool:
        if self.users_file is not None:
            users = read_users(self.users_file)
            return username in users and _equal(password, users[username])
        return self.password is not None and _equal(password, self.password)

    async def post(self):
        username = self.get_argument("username", "")
        password = self.get_argument("password", "")
        limits = {f"user:{username}": MAX_FAILURES, f"address:{self.request.remote_ip}": MAX_FAILURES_PER_ADDRESS}
        wait = self.throttle.wait(limits)
        if wait > 0:
            self._refuse(f"Too many wrong passwords: try again in {wait:.0f} s")
            return
        if self._validate(username, password):
            self.set_current_user(username)
            self.redirect(same_site_path(self.get_cookie("next_url", state.base_url)))
            return
        self.throttle.failed(*limits)
        await asyncio.sleep(DELAY)
        self._refuse("Invalid username or password!")

    def _refuse(self, message: str) -> None:
        self.redirect(self.request.path + "?error=" + tornado.escape.url_escape(message))


class LocalLogoutHandler(LogoutHandler):
    """Panel's logout page with its images from this server."""

    def get(self):
        for name in ("user", "id_token", "access_token", "refresh_token", "oauth_expiry", STATE_COOKIE_NAME):
            self.clear_cookie(name)
        self.write(self._logout_template.render(PANEL_CDN=_local_assets(), LOGIN_ENDPOINT=self._login_endpoint))


def _equal(given: str, expected: str) -> bool:
    """Compared in a time that does not tell how much of the password was right."""
    return hmac.compare_digest(given.encode("utf-8"), str(expected).encode("utf-8"))


class LoginProvider(BasicAuthProvider):
    """Panel's basic auth with `LoginHandler`; with a users file, a login cookie counts only while
    its user is still in the file (checked for every page and websocket a session opens)."""

    def __init__(self, password: str | None = None, users_file: Path | None = None, **kwargs):
        self._password, self._users_file, self._handler = password, users_file, None
        super().__init__(**kwargs)

    @property
    def login_handler(self):
        if self._handler is None:  # this server's own: its settings and throttle
            self._handler = type("DashboardLoginHandler", (LoginHandler,), {
                "password": self._password, "users_file": self._users_file, "throttle": Throttle(),
                "_login_endpoint": self._login_endpoint, "_login_template": self._login_template})
        return self._handler

    @property
    def logout_handler(self):
        return type("DashboardLogoutHandler", (LocalLogoutHandler,), {
            "_logout_template": self._logout_template, "_login_endpoint": self._login_endpoint})

    @property
    def get_user(self):
        panel_get_user = super().get_user

        def get_user(request_handler):
            if self._users_file is not None:  # before Panel's, which counts a websocket's user as active
                user = request_handler.get_secure_cookie("user", max_age_days=config.oauth_expiry)
                if user and user.decode("utf-8") not in read_users(self._users_file):
                    return None
            return panel_get_user(request_handler)
        return get_user
