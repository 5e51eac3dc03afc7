"""The nginx configuration shipped for several servers (data/nginx/taskdash.conf) and the origin
setting the servers need behind it. tests/ui/test_lake_behind_nginx.py drives Chromium through it."""

from __future__ import annotations

import subprocess
import sys

from bokeh.server.util import check_allowlist, create_hosts_allowlist
from nginx import SHIPPED, command, main_config, nginx_binary

from dashboard.config import Config


def test_the_shipped_nginx_file_is_valid_as_it_is(tmp_path):
    main_config(tmp_path, SHIPPED)
    checked = subprocess.run([*command(nginx_binary(), tmp_path), "-t"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


def test_behind_a_proxy_the_allowed_origin_is_the_address_browsers_type():
    # A browser leaves the scheme's default port out of its Origin (https://dash.example.com), and
    # Bokeh reads a host without a port as host:80: so `dash.example.com` admits it, and
    # `dash.example.com:443` would refuse every page's websocket.
    def admits(setting: str, origin: str) -> bool:
        allowed = create_hosts_allowlist(Config(allow_websocket_origin=(setting,)).websocket_origins, 5006)
        return check_allowlist(origin, allowed)

    assert admits("dash.example.com", "dash.example.com")
    assert not admits("dash.example.com:443", "dash.example.com")
    assert admits("dash.example.com:8443", "dash.example.com:8443")
    assert not admits("dash.example.com", "evil.example.com")


def test_serve_refuses_an_origin_that_is_not_a_host_or_host_and_port(tmp_path):
    refused = subprocess.run([sys.executable, "-m", "dashboard.cli", "serve", "--port", "0", "--spool",
                              str(tmp_path / "spool"), "--index", str(tmp_path / "index.duckdb"),
                              "--allow-websocket-origin", "https://dash.example.com"],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert refused.returncode == 1
    assert "--allow-websocket-origin 'https://dash.example.com': give host or host:port" in refused.stderr
    assert "Traceback" not in refused.stderr
