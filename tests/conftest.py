"""Shared by every test folder: the browser tests drive Debian's Chromium through Playwright."""

from __future__ import annotations

import pytest
from serving import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}
