"""The running dashboard: its routes and the server start (the services are `dashboard.services`)."""

from __future__ import annotations

import logging
import re

import panel as pn
from bokeh.document import Document
from bokeh.io.state import curstate
from bokeh.server.views.auth_request_handler import AuthRequestHandler
from bokeh.settings import settings as bokeh_settings
from tornado.web import RedirectHandler, authenticated

from . import downloads, login
from .config import Config
from .pages import compare, run_detail, task_runs, tasks, timeline
from .services import Services, services, stop_services  # noqa: F401  (the CLI starts and stops them here)
from .store import Links, Store

log = logging.getLogger(__name__)


#: Panel's login page, where access control sends a visitor who has not logged in.
LOGIN = "/login"


def route_pattern(template: str, reserved: tuple[str, ...] = ()) -> str:
    """A route such as /task-runs/{run_id} as the regular expression Tornado matches; a value
    may be any path segment but the reserved ones."""
    parts = re.split(r"\{(\w+)\}", template)
    not_reserved = f"(?!(?:{'|'.join(map(re.escape, reserved))})/?$)" if reserved else ""
    return "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>{not_reserved}[^/]+)"
                   for i, part in enumerate(parts))


def routes(config: Config, store: Store, reserved: tuple[str, ...] = ()) -> dict:
    """Page factories by URL pattern, each handed the process's store."""
    def handed(page):  # a plain function: Panel shows a functools.partial as its repr instead of calling it
        def build():
            pn.state.curdoc.on_session_destroyed(forget_ended_sessions_document)
            return page(store)
        return build

    return {
        config.routes["task_runs"]: handed(task_runs.page),
        route_pattern(config.routes["run_detail"], reserved): handed(run_detail.page),
        config.routes["tasks"]: handed(tasks.page),
        config.routes["timeline"]: handed(timeline.page),
        config.routes["compare"]: handed(compare.page),
    }


def forget_ended_sessions_document(_ended_session) -> None:
    """When a session ends, Bokeh's process-wide current document (its `curdoc()` outside a
    session) must not be a document whose session has ended. Panel's page build puts back there
    whatever Bokeh's `curdoc()` said before the build: when two pages build at once, the other
    session's document, which may end first. That kept a closed page in memory until another
    build replaced it. (An ended session's document has no session context; neither has a new
    one, replaced too: it is cheap.)"""
    state = curstate()
    if state.document.session_context is None:
        state.document = Document()


class HomeRedirectHandler(AuthRequestHandler):
    """/ leads to the Task Runs page (through the login page first when access control is on)."""

    def initialize(self, url: str) -> None:
        self.url = url

    @authenticated
    def get(self) -> None:
        self.redirect(self.url)


def serve(config: Config, show: bool = False, start: bool = True, **kwargs):
    """Start the services and the Panel server for the configured routes; return the server.

    A bad access control setting raises ConfigError before anything starts.
    """
    access = config.access.server_options()
    if "basic_auth" in access:  # Panel's basic auth, with our login handler (see dashboard.login)
        access["auth_provider"] = login.LoginProvider(
            password=config.access.password, users_file=config.access.users_file, login_endpoint=LOGIN)
        del access["basic_auth"]
    if access:
        login.install_next_url_check()
    store = services(config, Links(config.routes), alerting=True).store
    pn.config.nthreads = config.threads or None
    # Bokeh checks each new session's document for mistakes in how its models are put together:
    # 25-65 ms of every /task-runs session, for pages that are built the same way each time.
    # tests/test_page_documents.py makes those checks on every page once instead.
    bokeh_settings.perform_document_validation.set_value(False)
    extra_patterns = [(r"/", HomeRedirectHandler, {"url": config.routes["task_runs"]}),
                      (route_pattern(config.routes["run_detail"]) + downloads.ROUTE_SUFFIX,
                       downloads.LogDownloadHandler, {"store": store})]
    reserved = ()
    if access:
        # Panel sends a visitor who has not logged in from a page to "./login", relative to the
        # page: from /task-runs/<run_id> that is /task-runs/login, which must lead to the login
        # page, not to the detail page of a run "login" (which would redirect again, forever).
        reserved = (LOGIN.strip("/"),)
        extra_patterns.append((r"/.+" + LOGIN, RedirectHandler, {"url": LOGIN, "permanent": False}))
    return pn.serve(
        routes(config, store, reserved),
        address=config.address,
        port=config.port,
        websocket_origin=config.websocket_origins,
        show=show,
        start=start,
        title="Task Runs Dashboard",
        extra_patterns=extra_patterns,
        login_endpoint=LOGIN,
        liveness=True,
        **access,
        **kwargs,
    )
