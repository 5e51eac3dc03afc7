"""One process's services: the index, the ingestor that writes it, the hub, and the read-only
Store built over them that pages, components and notebooks are handed.

The server (`app.serve`), plain `panel serve` of a page module and a notebook (`open_store`)
each start one set. Only this module and the CLI know the ingestor. In lake mode a server ingests
nothing: a LakeFeed follows the lake the hosts ship to and feeds the same hub.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .alerts import Alerter
from .config import Config, load_config
from .hub import Hub
from .index import Index
from .ingest import Ingestor
from .lake_feed import LakeFeed
from .server_log import quiet_closed_connections
from .store import Links, Store


@dataclass
class Services:
    """What every page of one process shares: the settings, the index, its ingestor, the hub and the store."""

    config: Config
    index: Index
    hub: Hub
    #: What feeds the hub: the ingestor of the local spool, or in lake mode the lake's feed.
    ingestor: Ingestor | LakeFeed
    store: Store
    alerter: Alerter | None = None

    @classmethod
    def start(cls, config: Config, links: Links | None = None, catch_up: bool = False,
              store_type: type[Store] = Store, alerting: bool = False) -> Services:
        """Open the index and follow the spool into it (after reading what is there, with `catch_up`).
        With `alerting` (the server's process, not a notebook's), the configured alert rules are
        followed too.

        The store closes them (in a notebook, where the store is all the user holds)."""
        # In lake mode a server ships nothing: a read-only attach, for which a role with SELECT will
        # do. A server (not a notebook, which is told at once) starts even while the lake cannot be
        # attached: its pages open, the indicator says why, and the feed attaches it once it can.
        index = Index(config.index, lake=config.lake, read_only=True, wait_for_lake=not catch_up,
                      memory=config.index_memory)
        hub = Hub()
        ingestor = LakeFeed(index, hub) if config.lake is not None else \
            Ingestor(index, config.spool, hub, rescan_seconds=config.rescan_seconds,
                     retention_days=config.retention_days)
        alerter = None
        if alerting and config.alerts.rules:
            alerter = Alerter(index, hub, config.alerts, config.alerts.state_path(config.index),
                              config.log_emphasis, config.routes["run_detail"])
            alerter.start()  # subscribed before the ingestor publishes anything
        if catch_up and config.lake is not None:
            ingestor.poll()
        elif catch_up:
            ingestor.catch_up()
        ingestor.start()
        shown = {"browser_alerts_of": alerter.browser_alerts} if alerter is not None and alerter.for_browser else {}
        store = store_type(index, hub, config, links or Links(), health_of=lambda: ingestor.health, **shown)
        services = cls(config, index, hub, ingestor, store, alerter)
        store.on_close = services.stop
        return services

    def stop(self) -> None:
        self.ingestor.stop()
        if self.alerter is not None:
            self.alerter.stop()
        self.index.close()


_services: Services | None = None
_services_lock = threading.Lock()


def services(config: Config | None = None, links: Links | None = None, alerting: bool = False) -> Services:
    """This process's services, started on first use (from panel_serve.yaml unless given; with
    alerts when `alerting`: the server's first call says)."""
    global _services
    with _services_lock:
        if _services is None:
            quiet_closed_connections()
            _services = Services.start(config or load_config(), links, alerting=alerting)
        return _services


def process_store() -> Store:
    """This process's store: for a page module served by plain `panel serve`."""
    return services().store


def stop_services() -> None:
    global _services
    with _services_lock:
        if _services is not None:
            _services.stop()
            _services = None
