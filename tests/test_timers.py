"""A page's periodic work (dashboard.components.timers): it ticks on its session, goes on after a
failing tick, and lets go of the page the moment it is stopped or its session ends."""

from __future__ import annotations

import gc
import weakref

import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from dashboard.components import timers
from helpers import wait_until
from serving import plain_get, served_component


def test_a_page_timer_ticks_on_its_session_and_goes_on_after_a_failing_tick():
    ticks, stopped_after = [], []

    def build():
        page = pn.pane.Markdown("ticks")

        def tick() -> None:
            ticks.append(pn.state.curdoc)
            if len(ticks) == 2:
                raise RuntimeError("a tick that fails")
            if len(ticks) == 5:
                ticker.stop()
                stopped_after.append(len(ticks))

        ticker = timers.every(0.05, tick)
        return page

    tickers_before = timers.ticker_count()  # other tests' servers may have left sessions open
    with served_component(build) as url:
        plain_get(url)
        wait_until(lambda: stopped_after, timeout=20, message="five ticks, the second failing")
        doc = ticks[0]
        assert doc is not None and doc.session_context is not None
        assert all(tick_doc is doc for tick_doc in ticks), "every tick runs with its session's document current"
        # Stopped at the fifth tick: no timeout is left to make a sixth.
        wait_until(lambda: len(doc.session_callbacks) == 0, timeout=5, message="no timeout left on the document")
        assert len(ticks) == 5 and timers.ticker_count() == tickers_before


def test_a_closed_session_s_page_is_freed_at_once_not_after_its_timer_s_period():
    """A Bokeh periodic callback, stopped with its session, held the page until its period ended
    (a minute for the runs page). A ticker's pending timeout is dropped with the session."""
    pages: list[weakref.ref] = []
    ended = []

    class Page(pn.viewable.Viewer):
        """A view a model of the document calls back (as the run strip's clicks do)."""

        def __init__(self):
            super().__init__()
            self.source = ColumnDataSource({"x": [1], "y": [1]})
            self.plot = figure(width=200, height=100)
            self.plot.scatter("x", "y", source=self.source)
            self.source.selected.on_change("indices", self.clicked)

        def clicked(self, _attr, _old, _new) -> None:
            pass

        def __panel__(self):
            return pn.pane.Bokeh(self.plot)

    def build():
        page = Page()
        timers.every(60, lambda: page.source.data.update(y=[2]))
        pages.append(weakref.ref(page))
        pn.state.on_session_destroyed(lambda _context: ended.append(True))
        return page

    with served_component(build, check_unused_sessions_milliseconds=100,
                          unused_session_lifetime_milliseconds=100) as url:
        plain_get(url)
        wait_until(lambda: ended, timeout=20, message="the unused session to end")

        def freed() -> bool:
            gc.collect()
            return pages[0]() is None

        wait_until(freed, timeout=10, interval=0.2, message="the closed session's page to be freed")
