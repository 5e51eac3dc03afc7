"""Every page's document passes Bokeh's checks of how its models are put together (a glyph's
columns missing from its source, a layout without children, ...). The server leaves those checks
out of each session's build (dashboard.app.serve), so they are made here, on the documents a
browser receives, for each page over a dbt-shaped project's runs."""

from __future__ import annotations

import concurrent.futures

import pytest
from bokeh.core.validation.check import check_integrity
from builders import write_dbt_spool
from clients import LiveClient, import_page_models
from helpers import wait_until
from serving import served_in_process

PAGES = ("/task-runs", "/task-runs/{run}", "/tasks", "/timeline", "/compare?a={run}&b={other}", "/compare")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import_page_models()
    folder = tmp_path_factory.mktemp("page-documents")
    project = write_dbt_spool(folder / "spool", tasks=40)
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == len(project.runs), timeout=30,
                   message="the spool indexed")
        yield url, services


@pytest.mark.parametrize("route", PAGES)
def test_each_page_s_document_passes_bokeh_s_checks(served, route):
    url, services = served
    with services.index.cursor() as cursor:
        runs = cursor.execute("SELECT run_id FROM runs ORDER BY run_id LIMIT 2").fetchall()
    # On a thread of its own: pull_session runs its own event loop until it is connected, which it
    # cannot do on this one when a browser test before it left Playwright's loop running here.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        client = pool.submit(LiveClient, url + route.format(run=runs[0][0], other=runs[1][0])).result()
    try:
        models = client.read(lambda document: list(document.models))
        issues = check_integrity(models)
    finally:
        client.close()
    assert len(models) > 20, f"{route}: the page's document holds only {len(models)} models"
    assert (issues.error, issues.warning) == ([], []), f"{route}: {issues}"
