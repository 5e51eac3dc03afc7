"""The running dashboard: the per-process services (index, ingestor, hub), routes and server start."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from urllib.parse import quote

import panel as pn
from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.web import RedirectHandler, authenticated

from . import downloads, login
from .config import Config, load_config
from .hub import Hub
from .index import Index
from .ingest import Ingestor
from .server_log import quiet_closed_connections

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What every page of one process shares: the settings, the index, its ingestor and the hub."""

    config: Config
    index: Index
    hub: Hub
    ingestor: Ingestor
    #: True under `taskdash serve` (pages at the configured routes); False under plain
    #: `panel serve` of the page modules, where each page is at /<module> and takes ?run_id=.
    routed: bool = False
    #: Put before routed links: empty on the server; the server's address in a notebook.
    link_base: str = ""

    def url(self, page: str, run_id: str | None = None) -> str:
        """The link to a page ('task_runs', 'run_detail' or 'tasks') as this server serves it."""
        if self.routed:
            route = self.config.routes[page]
            return self.link_base + (route.replace("{run_id}", run_segment(run_id)) if run_id is not None
                                     else route)
        return f"./{page}" + (f"?run_id={quote(run_id, safe='')}" if run_id is not None else "")

    @classmethod
    def start(cls, config: Config) -> Services:
        quiet_closed_connections()
        index = Index(config.index)
        hub = Hub()
        ingestor = Ingestor(index, config.spool, hub, rescan_seconds=config.rescan_seconds)
        ingestor.start()
        return cls(config, index, hub, ingestor)

    def stop(self) -> None:
        self.ingestor.stop()
        self.index.close()


#: Path segments after a page's route that Panel answers itself (/task-runs/ws, /task-runs/metadata,
#: /task-runs/autoload.js) or that lead to the login page (/task-runs/login).
RESERVED_RUN_IDS = ("ws", "metadata", "autoload.js", "login")


def run_segment(run_id: str) -> str:
    """A run id as the path segment of its page. A reserved one has its first letter percent-encoded
    (/task-runs/%77s): Tornado matches routes on the path as sent, so that is the run's page, and
    it hands the page the decoded id."""
    if run_id in RESERVED_RUN_IDS:
        return f"%{ord(run_id[0]):02X}{run_id[1:]}"
    return quote(run_id, safe="")


_services: Services | None = None
_services_lock = threading.Lock()


def services(config: Config | None = None) -> Services:
    """This process's services, started on first use (from panel_serve.yaml unless given)."""
    global _services
    with _services_lock:
        if _services is None:
            _services = Services.start(config or load_config())
        return _services


def stop_services() -> None:
    global _services
    with _services_lock:
        if _services is not None:
            _services.stop()
            _services = None


#: Panel's login page, where access control sends a visitor who has not logged in.
LOGIN = "/login"


def route_pattern(template: str, reserved: tuple[str, ...] = ()) -> str:
    """A route such as /task-runs/{run_id} as the regular expression Tornado matches; a value
    may be any path segment but the reserved ones."""
    parts = re.split(r"\{(\w+)\}", template)
    not_reserved = f"(?!(?:{'|'.join(map(re.escape, reserved))})/?$)" if reserved else ""
    return "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>{not_reserved}[^/]+)"
                   for i, part in enumerate(parts))


def routes(config: Config, reserved: tuple[str, ...] = ()) -> dict:
    """Page factories by URL pattern."""
    from .pages import run_detail, task_runs, tasks

    return {
        config.routes["task_runs"]: task_runs.page,
        route_pattern(config.routes["run_detail"], reserved): run_detail.page,
        config.routes["tasks"]: tasks.page,
    }


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
    services(config).routed = True
    pn.config.nthreads = config.threads or None
    extra_patterns = [(r"/", HomeRedirectHandler, {"url": config.routes["task_runs"]}),
                      (route_pattern(config.routes["run_detail"]) + downloads.ROUTE_SUFFIX,
                       downloads.LogDownloadHandler, {"services": services})]
    reserved = ()
    if access:
        # Panel sends a visitor who has not logged in from a page to "./login", relative to the
        # page: from /task-runs/<run_id> that is /task-runs/login, which must lead to the login
        # page, not to the detail page of a run "login" (which would redirect again, forever).
        reserved = (LOGIN.strip("/"),)
        extra_patterns.append((r"/.+" + LOGIN, RedirectHandler, {"url": LOGIN, "permanent": False}))
    return pn.serve(
        routes(config, reserved),
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
