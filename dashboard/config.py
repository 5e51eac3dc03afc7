"""The server settings from panel_serve.yaml, merged with command-line overrides."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from .alert_rules import AlertConfigError, AlertSettings, parse_alerts
from .clock import LOCAL, zone_info
from .emphasis import Emphasis
from .lake import LakeError, LakeSettings

CONFIG_ENV = "TASKDASH_CONFIG"
DEFAULT_FILE = "panel_serve.yaml"


class ConfigError(ValueError):
    """panel_serve.yaml cannot be read or holds a bad value; the message says which."""


#: Environment variables Panel reads in place of a setting of the access section; when set, they win.
ACCESS_ENVIRONMENT = {
    "cookie_secret": ("PANEL_COOKIE_SECRET", "BOKEH_COOKIE_SECRET"),
    "oauth_key": ("PANEL_OAUTH_KEY",),
    "oauth_secret": ("PANEL_OAUTH_SECRET",),
    "oauth_redirect_uri": ("PANEL_OAUTH_REDIRECT_URI",),
    "oauth_extra_params": ("PANEL_OAUTH_EXTRA_PARAMS",),
}
#: An allowed websocket origin as Bokeh takes it: host, host:port or host:* (a * in the host is a wildcard).
ORIGIN = re.compile(r"[^\s:/]+(:(\d+|\*))?")
#: Shortest cookie secret accepted: the key that signs the login cookie must not be guessable.
MIN_COOKIE_SECRET = 32


@dataclass(frozen=True)
class Access:
    """Who may open the server: anyone (the default), Panel's basic auth, or an OAuth provider."""

    password: str | None = None
    users_file: Path | None = None
    oauth_provider: str | None = None
    oauth_key: str | None = None
    oauth_secret: str | None = None
    oauth_redirect_uri: str | None = None
    oauth_extra_params: dict[str, str] = field(default_factory=dict)
    cookie_secret: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.password or self.users_file or self.oauth_provider)

    def effective(self, name: str):
        """A setting as Panel will use it: its environment variable if set, else this file's value."""
        for variable in ACCESS_ENVIRONMENT.get(name, ()):
            if variable in os.environ:
                return os.environ[variable]
        return getattr(self, name)

    def server_options(self) -> dict:
        """pn.serve's keyword arguments for this access control; ConfigError when a setting it needs is bad."""
        if not self.enabled:
            return {}
        chosen = [name for name in ("password", "users_file", "oauth_provider") if getattr(self, name)]
        if len(chosen) > 1:
            raise ConfigError(f"access: set only one of password, users_file and oauth_provider, not "
                              f"{' and '.join(chosen)}")
        cookie_secret = self.effective("cookie_secret")
        if not cookie_secret:
            raise ConfigError("access.cookie_secret is required when access control is on: it signs the login "
                              "cookie. Set it in the file or in $PANEL_COOKIE_SECRET, e.g. the output of "
                              "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
        if len(cookie_secret) < MIN_COOKIE_SECRET:
            raise ConfigError(f"access.cookie_secret is too short ({len(cookie_secret)} characters): use at least "
                              f"{MIN_COOKIE_SECRET} random characters")
        options = {"cookie_secret": cookie_secret}
        if self.password:
            options["basic_auth"] = self.password
        elif self.users_file:
            _read_users_file(self.users_file)
            options["basic_auth"] = str(self.users_file)  # Panel reads it again at each login
        else:
            options.update(self._oauth_options())
        return options

    def _oauth_options(self) -> dict:
        from panel.auth import AUTH_PROVIDERS

        provider = self.oauth_provider
        if provider not in AUTH_PROVIDERS:
            raise ConfigError(f"access.oauth_provider {provider!r} is not one of Panel's providers: "
                              f"{', '.join(sorted(AUTH_PROVIDERS))}")
        options = {"oauth_provider": provider}
        for name, variable in (("oauth_key", "PANEL_OAUTH_KEY"), ("oauth_secret", "PANEL_OAUTH_SECRET")):
            value = self.effective(name)
            if not value and provider != "pam":
                raise ConfigError(f"access.{name} is required with access.oauth_provider {provider!r}: set it in "
                                  f"the file or in ${variable}")
            if value:
                options[name] = value
        redirect_uri = self.effective("oauth_redirect_uri")
        if redirect_uri:
            if not str(redirect_uri).startswith(("http://", "https://")):
                raise ConfigError(f"access.oauth_redirect_uri must be an http(s) URL, not {redirect_uri!r}")
            options["oauth_redirect_uri"] = redirect_uri
        if self.oauth_extra_params and "PANEL_OAUTH_EXTRA_PARAMS" not in os.environ:
            options["oauth_extra_params"] = dict(self.oauth_extra_params)
        return options


def _read_users_file(path: Path) -> dict[str, str]:
    """The users file of basic auth: a JSON object of user name to password (Panel's format)."""
    try:
        users = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"access.users_file {path} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"access.users_file {path} is not JSON: {exc}") from None
    if not (isinstance(users, dict) and users
            and all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in users.items())):
        raise ConfigError(f'access.users_file {path} must hold a JSON object of user names to passwords, '
                          f'e.g. {{"alice": "a long password"}}')
    return users


def _access(raw, base: Path, source: Path) -> Access:
    """The access section of the settings file, its types checked (what it needs is checked at serve time)."""
    if raw is None:
        return Access()
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: access must hold a mapping of settings")
    known = {f.name for f in fields(Access)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown setting access.{unknown[0]}; known: {', '.join(sorted(known))}")
    values = {k: v for k, v in raw.items() if v is not None}
    for name, value in values.items():
        expected = dict if name == "oauth_extra_params" else str
        if not isinstance(value, expected) or (name == "oauth_extra_params" and not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
            kind = "a mapping of text to text" if expected is dict else "text"
            raise ConfigError(f"{source}: access.{name} must be {kind}, not {value!r}")
    if "users_file" in values:
        values["users_file"] = base / values["users_file"]
    if "oauth_provider" in values:
        values["oauth_provider"] = values["oauth_provider"].lower()
    return Access(**values)


def _emphasis(raw, source: Path) -> Emphasis:
    """The log_emphasis section: lists of error and warning patterns (a missing list keeps the default)."""
    if raw is None:
        return Emphasis()
    if not isinstance(raw, dict) or set(raw) - {"error", "warning"}:
        raise ConfigError(f"{source}: log_emphasis must hold the lists error and warning, not {raw!r}")
    try:
        return Emphasis(**{kind: tuple(patterns or ()) if isinstance(patterns, list) else patterns
                           for kind, patterns in raw.items()})
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _index(raw: dict, base: Path, source: Path) -> dict:
    """The index section in its long form: `mode: local` (with `path:`) or `mode: lake` (with `catalog:`,
    `data_path:` and optionally `password_file:`)."""
    known = {"mode", "path", "catalog", "data_path", "password_file", "retention_days", "memory"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown setting index.{unknown[0]}; known: {', '.join(sorted(known))}")
    settings = {}
    if raw.get("retention_days") is not None:
        try:
            settings = {"retention_days": retention_days(raw["retention_days"])}
        except ValueError as exc:
            raise ConfigError(f"{source}: index.{exc}") from None
    if raw.get("memory") is not None:
        settings["index_memory"] = str(raw["memory"])
    mode = raw.get("mode", "local")
    if mode == "local":
        return settings | ({"index": base / raw["path"]} if raw.get("path") else {})
    if mode != "lake":
        raise ConfigError(f"{source}: index.mode must be local or lake, not {mode!r}")
    for name in ("catalog", "data_path"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise ConfigError(f"{source}: index.{name} is required with index.mode lake")
    data_path = raw["data_path"] if "://" in raw["data_path"] else str(base / raw["data_path"])
    try:
        return settings | {"lake": LakeSettings(raw["catalog"], data_path,
                                                 base / raw["password_file"] if raw.get("password_file") else None)}
    except LakeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def retention_days(value) -> float:
    """index.retention_days as a number of days (ValueError naming the setting if it is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"retention_days must be a number of days, not {value!r}")
    try:
        days = float(value)
    except ValueError:
        raise ValueError(f"retention_days must be a number of days, not {value!r}") from None
    if not days > 0:
        raise ValueError(f"retention_days must be more than 0 (leave it out to keep every run), not {value!r}")
    return days


#: DuckDB keeps what it has read of the index in its buffers up to its memory limit: by default
#: 80 % of the machine's memory, which a server holding 20M log lines filled to 2.7 GB and kept.
#: Ours by default: a quarter of it (the `index_memory` setting: a share, or a size such as 2GB).
DEFAULT_MEMORY = "25%"
_MEMORY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(%|[KMGT]i?B)\s*", re.IGNORECASE)


def duckdb_memory_limit(setting: str) -> str:
    """DuckDB's memory_limit for an `index_memory` setting: a share of the machine's memory ("25%")
    or a size in DuckDB's units ("512MB", "2GiB"). ValueError says what is wrong."""
    match = _MEMORY.fullmatch(str(setting))
    if not match or not float(match[1]) > 0 or (match[2] == "%" and float(match[1]) > 100):
        raise ValueError(f"index_memory must be a share of the machine's memory such as 25% or a size such as "
                         f"2GB or 512MiB, not {setting!r}")
    if match[2] != "%":
        return f"{match[1]}{match[2].upper().replace('IB', 'iB')}"
    machine = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return f"{max(1, int(machine * float(match[1]) / 100 / 2**20))}MiB"


def memory_bytes(limit: str) -> int:
    """The bytes of a `duckdb_memory_limit` ("6144MiB", "2GB": DuckDB's units, KB = 1000 and KiB = 1024)."""
    match = _MEMORY.fullmatch(limit)
    unit = match[2].upper()
    scale = 1024 if unit.endswith("IB") else 1000
    return int(float(match[1]) * scale ** "KMGT".index(unit[0]) * scale)


@dataclass(frozen=True)
class Config:
    """Everything the server needs to start; see panel_serve.yaml for what each setting means."""

    address: str = "127.0.0.1"
    port: int = 5006
    allow_websocket_origin: tuple[str, ...] = ()
    spool: Path = Path("data/spool")
    index: Path = Path("data/taskruns.duckdb")
    #: Lake mode: the shared DuckLake this process reads (and `taskdash ship` writes); None: the
    #: local index file above.
    lake: LakeSettings | None = None
    #: Runs (their events and logs) whose last activity is older than this many days are dropped:
    #: by the server's ingestor in local mode, by `taskdash ship`'s upkeep in a lake. None: kept.
    retention_days: float | None = None
    #: How much memory DuckDB may keep for the index: a share of the machine's ("25%") or a size ("2GB").
    index_memory: str = DEFAULT_MEMORY
    demo_workflow: Path = Path("data/demo_workflow.yaml")
    routes: dict[str, str] = field(default_factory=lambda: {
        "task_runs": "/task-runs", "run_detail": "/task-runs/{run_id}", "tasks": "/tasks",
        "timeline": "/timeline", "compare": "/compare"})
    rescan_seconds: float = 30.0
    push_min_interval_seconds: float = 0.25
    log_push_min_interval_seconds: float = 0.1
    threads: int = 4
    access: Access = field(default_factory=Access)
    log_emphasis: Emphasis = field(default_factory=Emphasis)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    #: The zone pages show times in when their URL does not say (tz=): UTC, local (the browser's
    #: own) or an IANA name; and whether they read relative to now ("5 min ago").
    time_zone: str = "UTC"
    relative_times: bool = False
    source: Path | None = None

    def with_overrides(self, catalog: str | None = None, data_path: str | None = None,
                       catalog_password_file: str | None = None, **overrides) -> Config:
        """A copy with the given settings replaced; None means keep the file's value. A `catalog`
        (with `data_path`) turns lake mode on, as index.mode lake does in the file."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if catalog or data_path or catalog_password_file:
            current = self.lake
            catalog = catalog or (current and current.catalog)
            data_path = data_path or (current and current.data_path)
            if not catalog or not data_path:
                raise ConfigError("lake mode needs both --catalog and --data-path (or index.catalog and "
                                  "index.data_path in the settings file)")
            password_file = (Path(catalog_password_file).absolute() if catalog_password_file
                             else current and current.password_file)
            try:
                given["lake"] = LakeSettings(catalog, data_path if "://" in data_path
                                             else str(Path(data_path).absolute()), password_file)
            except LakeError as exc:
                raise ConfigError(str(exc)) from None
        for key in ("spool", "index", "demo_workflow"):
            if key in given:
                given[key] = Path(given[key]).absolute()
        return replace(self, **given)

    @property
    def websocket_origins(self) -> list[str]:
        """Origins (host:port) whose pages may open the websocket, besides the server's own address."""
        if self.allow_websocket_origin:
            return list(self.allow_websocket_origin)
        if self.port == 0:  # the port is picked when the server binds: Bokeh then allows localhost:<that port>
            return []
        hosts = {self.address, "localhost", "127.0.0.1"} if self.address in ("127.0.0.1", "localhost") \
            else {self.address}
        return sorted(f"{host}:{self.port}" for host in hosts)


def find_config_file(path: str | Path | None = None) -> Path | None:
    """The settings file: the one given, else $TASKDASH_CONFIG, else ./panel_serve.yaml if present."""
    if path:
        return Path(path)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    candidate = Path.cwd() / DEFAULT_FILE
    return candidate if candidate.exists() else None


def load_config(path: str | Path | None = None) -> Config:
    """Read the settings file (if any) into a Config; relative paths are taken from its folder."""
    source = find_config_file(path)
    if source is None:
        return Config()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"settings file {source} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must hold a mapping of settings")
    refresh = raw.pop("refresh", None) or {}
    raw.update({k: v for k, v in refresh.items()})
    known = {f.name for f in fields(Config)} - {"source"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    base = source.parent.absolute()
    values = dict(raw)
    access_settings = values.pop("access", None)
    for key in ("spool", "index", "demo_workflow"):
        if key in values and not isinstance(values[key], dict):
            values[key] = base / values[key]
    origins = values.get("allow_websocket_origin") or []
    if not (isinstance(origins, list) and all(isinstance(o, str) and ORIGIN.fullmatch(o) for o in origins)):
        raise ConfigError(f"{source}: allow_websocket_origin must be a list of host or host:port texts "
                          f"(e.g. [dash.example.com]), not {origins!r}")
    values["allow_websocket_origin"] = tuple(origins)
    routes = Config().routes | (values.get("routes") or {})
    if "{run_id}" not in routes["run_detail"]:
        raise ConfigError(f"{source}: routes.run_detail must contain {{run_id}}")
    values["routes"] = routes
    values["access"] = _access(access_settings, base, source)
    if isinstance(values.get("index"), dict):
        values.pop("index")
        values.update(_index(raw["index"], base, source))
    try:
        duckdb_memory_limit(values.get("index_memory", DEFAULT_MEMORY))
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    values["log_emphasis"] = _emphasis(values.get("log_emphasis"), source)
    try:
        values["alerts"] = parse_alerts(values.get("alerts"), base)
    except AlertConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    zone = values.get("time_zone", "UTC")
    if not isinstance(zone, str) or not (zone.lower() == LOCAL or zone_info(zone) is not None):
        raise ConfigError(f"{source}: time_zone must be UTC, local or an IANA zone name such as Europe/Berlin, "
                          f"not {zone!r}")
    if not isinstance(values.get("relative_times", False), bool):
        raise ConfigError(f"{source}: relative_times must be true or false")
    try:
        config = Config(**values, source=source)
        int(config.port)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for name in ("rescan_seconds", "push_min_interval_seconds", "log_push_min_interval_seconds"):
        seconds = getattr(config, name)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ConfigError(f"{source}: refresh.{name} must be a number of seconds, not {seconds!r}")
    return config
