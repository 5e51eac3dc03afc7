"""The Task Runs page's server side without a browser: what a hub change costs a session,
and the view's round trip through the URL."""

from __future__ import annotations

import datetime as dt

import pytest

from dashboard import queries
from dashboard.config import Config
from dashboard.hub import Change, Hub
from dashboard.index import Index
from dashboard.index_schema import RunSummary
from dashboard.ingest import Ingestor
from dashboard.components.runs_grid import RunsGrid, RunsQuery
from dashboard.spool import SpoolWriter
from dashboard.store import Store


@pytest.fixture
def world(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("Fetch_Orders", "billing")
    writer.define_task("Extract_Users", "etl")
    now = queries.utcnow()
    for i in range(30):
        task = "Fetch_Orders" if i % 2 else "Extract_Users"
        writer.status(f"r-{i:02d}", task, "RUNNING", agent="agent-1", ts=now - dt.timedelta(minutes=i + 1))
    index = Index(tmp_path / "index.duckdb")
    hub = Hub()
    ingestor = Ingestor(index, tmp_path / "spool", hub)
    ingestor.catch_up()
    svc = Store(index, hub, Config(spool=tmp_path / "spool", index=tmp_path / "index.duckdb"))
    yield svc, writer, ingestor
    index.close()


class QueryCounter:
    """Counts the queries a session sends to the index."""

    def __init__(self, index: Index, monkeypatch):
        self.count = 0
        original = index.query

        def counted(sql, params=()):
            self.count += 1
            return original(sql, params)

        monkeypatch.setattr(index, "query", counted)


def summary_of(svc: Store, run_id: str) -> dict[str, RunSummary]:
    run = queries.run(svc.index, run_id)
    return {run_id: RunSummary(run["task"], run["grp"], run["status"], run["trigger_time"])}


def test_a_change_the_session_cannot_show_costs_no_query(world, monkeypatch):
    svc, writer, ingestor = world
    view = RunsGrid(store=svc, group="billing")
    shown = set(view.grid.value["run_id"])
    assert shown == {f"r-{i:02d}" for i in range(1, 30, 2)}, "only billing runs"
    writer.status("r-00", "Extract_Users", "SUCCESS", exit_code=0)  # an etl run
    ingestor.catch_up()
    change = Change(runs=summary_of(svc, "r-00"))
    counter = QueryCounter(svc.index, monkeypatch)

    view.changed(change)
    assert counter.count == 0
    view.changed(Change(log_lines={("r-01", "stdout"): 10}))
    assert counter.count == 0, "log lines do not touch the runs grid"


def test_a_change_to_a_shown_run_updates_its_row(world, monkeypatch):
    svc, writer, ingestor = world
    view = RunsGrid(store=svc, group="billing")
    writer.status("r-03", "Fetch_Orders", "FAILED", exit_code=2)
    ingestor.catch_up()
    change = Change(runs=summary_of(svc, "r-03"))
    counter = QueryCounter(svc.index, monkeypatch)

    view.changed(change)
    assert counter.count > 0
    row = view.grid.value.set_index("run_id").loc["r-03"]
    assert row["status"] == "FAILED" and not row["running"]
    assert view.chips.options["FAILED 1"] == "FAILED"


def test_a_query_that_finds_the_same_rows_sends_nothing(world):
    svc, _, _ = world
    view = RunsGrid(store=svc)
    shown = view.grid.value
    view.refresh()  # running durations differ, but they tick in the browser
    assert view.grid.value is shown


def test_a_new_run_appears_at_the_top_of_page_1(world):
    svc, writer, ingestor = world
    view = RunsGrid(store=svc, page_size=25)
    writer.status("r-new", "Fetch_Orders", "TRIGGER")
    ingestor.catch_up()
    view.changed(Change(runs=summary_of(svc, "r-new")))
    assert view.grid.value["run_id"].iloc[0] == "r-new"
    assert len(view.grid.value) == 25


def test_the_view_round_trips_through_the_url():
    query = RunsQuery(search="inv oice", status=["FAILED", "RUNNING"], since="7d", group="billing & co",
                      sort="duration", descending=False, page=3, page_size=100)
    restored = RunsQuery()
    assert restored.from_url(query.to_url()) == []
    assert restored.param.values() | {"name": None} == query.param.values() | {"name": None}
    assert RunsQuery().to_url() == {}, "defaults stay out of the URL"


@pytest.mark.parametrize(("name", "text", "hint"), [
    ("since", "2y", "use one of 6h, 12h, 24h, 3d, 7d"),
    ("status", "FAILED,PAUSED", "use one of IDLE"),
    ("page", "two", "use a whole number"),
    ("page", "0", "use a whole number"),
    ("page_size", "1000", "use one of 25, 50, 100"),
    ("descending", "sideways", "use one of asc, desc"),
    ("sort", "run_id; DROP TABLE runs", "use one of trigger_time"),
])
def test_a_bad_url_value_is_named_and_the_rest_is_kept(name, text, hint):
    query = RunsQuery()
    problems = query.from_url({name: text, "search": "report"})
    assert len(problems) == 1 and problems[0].startswith(f"ignored {name}={text!r} from the URL: {hint}")
    assert query.search == "report"
    assert getattr(query, name) == query.param[name].default


def test_the_late_chip_counts_the_late_runs_and_narrows_the_grid_to_them(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    now = queries.utcnow()
    for n in range(6):  # Report takes 60 to 70 s
        began = now - dt.timedelta(hours=2, minutes=5 * n)
        writer.status(f"done-{n}", "Report", "RUNNING", ts=began, trigger_time=began)
        writer.status(f"done-{n}", "Report", "SUCCESS", ts=began + dt.timedelta(seconds=60 + 2 * n), trigger_time=began)
    for run_id, seconds in (("late-1", 600), ("on-time", 10)):
        began = now - dt.timedelta(seconds=seconds)
        writer.status(run_id, "Report", "RUNNING", ts=began, trigger_time=began)
    index = Index(tmp_path / "index.duckdb")
    try:
        Ingestor(index, tmp_path / "spool").catch_up()
        store = Store(index, Hub(), Config(spool=tmp_path / "spool", index=tmp_path / "index.duckdb"))
        grid = RunsGrid(store=store)
        assert grid.late_chip.label == "LATE 1" and len(grid.grid.value) == 8
        grid.late = True
        assert list(grid.grid.value["run_id"]) == ["late-1"]
        assert grid.to_url() == {"late": "yes"} and grid.filtered
        grid.clear.clicks += 1
        assert not grid.late and len(grid.grid.value) == 8
    finally:
        index.close()
    asked = RunsQuery()
    assert asked.from_url({"late": "maybe"}) == ["ignored late='maybe' from the URL: use one of no, yes"]
