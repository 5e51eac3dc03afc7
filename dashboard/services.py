"""One process's services: the index, the ingestor that writes it, the hub, and the read-only
Store built over them that pages, components and notebooks are handed.

The server (`app.serve`), plain `panel serve` of a page module and a notebook (`open_store`)
each start one set. Only this module and the CLI know the ingestor. In lake mode a server ingests
nothing: a LakeFeed follows the lake the hosts ship to and feeds the same hub.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

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

    @classmethod
    def start(cls, config: Config, links: Links | None = None, catch_up: bool = False,
              store_type: type[Store] = Store) -> Services:
        """Open the index and follow the spool into it (after reading what is there, with `catch_up`).

        The store closes them (in a notebook, where the store is all the user holds)."""
        index = Index(config.index, lake=config.lake)
        hub = Hub()
        if config.lake is not None:
            ingestor = LakeFeed(index, hub)
            if catch_up:
                ingestor.poll()
        else:
            ingestor = Ingestor(index, config.spool, hub, rescan_seconds=config.rescan_seconds)
            if catch_up:
                ingestor.catch_up()
        ingestor.start()
        store = store_type(index, hub, config, links or Links(), health_of=lambda: ingestor.health)
        services = cls(config, index, hub, ingestor, store)
        store.on_close = services.stop
        return services

    def stop(self) -> None:
        self.ingestor.stop()
        self.index.close()


_services: Services | None = None
_services_lock = threading.Lock()


def services(config: Config | None = None, links: Links | None = None) -> Services:
    """This process's services, started on first use (from panel_serve.yaml unless given)."""
    global _services
    with _services_lock:
        if _services is None:
            quiet_closed_connections()
            _services = Services.start(config or load_config(), links)
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
