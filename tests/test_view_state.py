"""The one codec between a component's view state and its page's URL (components/view_state.py),
for every page: what each keeps, how a bad value is named alone, and why Panel's own
`pn.state.location.sync` is not used for it."""

from __future__ import annotations

import pytest
from panel.util import parse_query

from dashboard.components.log_viewer import LogPosition
from dashboard.components.runs_grid import RunsQuery
from dashboard.components.dependency_graph import TasksQuery


def test_the_log_position_round_trips_through_the_url_and_keeps_its_link_format():
    assert LogPosition(stream="stderr", line=1234).to_url() == {"stream": "stderr", "line": "1234"}
    assert LogPosition(page=2).to_url() == {"page": "2"}
    assert LogPosition().to_url() == {}, "defaults stay out of the URL"
    restored = LogPosition()
    assert restored.from_url({"stream": "stderr", "line": "1234"}) == []
    assert (restored.stream, restored.page, restored.line) == ("stderr", None, 1234)


def test_the_tasks_query_round_trips_through_the_url():
    query = TasksQuery(group="billing & co", search="007", since="7d", task="Send_Email", hops=2)
    restored = TasksQuery()
    assert restored.from_url(query.to_url()) == []
    assert restored.param.values() | {"name": None} == query.param.values() | {"name": None}
    assert TasksQuery().to_url() == {}


@pytest.mark.parametrize(("state", "args", "bad", "hint"), [
    (LogPosition, {"stream": "stdin", "line": "12"}, "stream", "use one of stdout, stderr"),
    (LogPosition, {"stream": "stderr", "line": "twelve"}, "line", "use a whole number from 1"),
    (LogPosition, {"stream": "stderr", "page": "9" * 30}, "page", "use a whole number from 1"),
    (TasksQuery, {"since": "2y", "search": "invoice"}, "since", "use one of 6h, 12h, 24h, 3d, 7d"),
    (TasksQuery, {"hops": "11", "search": "invoice"}, "hops", "use a whole number from 0 to 10"),
])
def test_each_bad_value_gets_its_own_message_and_the_others_apply(state, args, bad, hint):
    view = state()
    problems = view.from_url(args)
    assert problems == [f"ignored {bad}={args[bad]!r} from the URL: {hint}"]
    assert getattr(view, bad) == view.param[bad].default
    for name, text in args.items():
        if name != bad:
            assert str(getattr(view, name)) == text


def test_only_the_parameters_a_url_keeps_are_read_from_it():
    query = RunsQuery()
    assert query.from_url({"name": "x", "run_filter": "y", "search": "ok"}) == []
    assert query.search == "ok" and query.name != "x"


def test_panel_s_own_url_parsing_would_change_values_links_carry():
    """Why pages do not use `pn.state.location.sync`: before a parameter sees a value, Panel
    parses it by its look, so a task search for "007" or "true" would come back as a number or a
    boolean, and a value in brackets is dropped. If Panel stops doing this, reconsider."""
    parsed = parse_query("?search=007&group=true&task=1e3")
    assert parsed == {"search": 7, "group": True, "task": 1000.0}
    assert "status" not in parse_query("?status=[FAILED]")
    query = RunsQuery()
    assert query.from_url({"search": "007", "group": "true"}) == []
    assert (query.search, query.group) == ("007", "true")


def test_the_fleet_search_keeps_its_view_under_url_names_of_its_own():
    """Beside the grid on /task-runs: the grid's `search` and `page` are not the search's."""
    from dashboard.components.fleet_search import SearchQuery

    assert set(SearchQuery.url_arg_names()).isdisjoint(RunsQuery.url_arg_names())
    query = SearchQuery(text="Deadlock <b>", regex=True, page=3)
    assert query.to_url() == {"q": "Deadlock <b>", "q_regex": "true", "q_page": "3"}
    restored = SearchQuery()
    assert restored.from_url(query.to_url() | {"search": "grid's", "page": "9"}) == []
    assert (restored.text, restored.regex, restored.page) == ("Deadlock <b>", True, 3)
    view = SearchQuery()
    assert view.from_url({"q": "ok", "q_regex": "yes"}) == ["ignored q_regex='yes' from the URL: use one of false, true"]
    assert (view.text, view.regex) == ("ok", False)
