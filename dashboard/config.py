"""The server settings from panel_serve.yaml, merged with command-line overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

CONFIG_ENV = "TASKDASH_CONFIG"
DEFAULT_FILE = "panel_serve.yaml"


class ConfigError(ValueError):
    """panel_serve.yaml cannot be read or holds a bad value; the message says which."""


@dataclass(frozen=True)
class Config:
    """Everything the server needs to start; see panel_serve.yaml for what each setting means."""

    address: str = "127.0.0.1"
    port: int = 5006
    allow_websocket_origin: tuple[str, ...] = ()
    spool: Path = Path("data/spool")
    index: Path = Path("data/taskruns.duckdb")
    demo_workflow: Path = Path("data/demo_workflow.yaml")
    routes: dict[str, str] = field(default_factory=lambda: {
        "task_runs": "/task-runs", "run_detail": "/task-runs/{run_id}", "tasks": "/tasks"})
    rescan_seconds: float = 30.0
    push_min_interval_seconds: float = 0.25
    threads: int = 4
    source: Path | None = None

    def with_overrides(self, **overrides) -> Config:
        """A copy with the given settings replaced; None means keep the file's value."""
        given = {k: v for k, v in overrides.items() if v is not None}
        for key in ("spool", "index", "demo_workflow"):
            if key in given:
                given[key] = Path(given[key]).absolute()
        return replace(self, **given)

    @property
    def websocket_origins(self) -> list[str]:
        if self.allow_websocket_origin:
            return list(self.allow_websocket_origin)
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
    for key in ("spool", "index", "demo_workflow"):
        if key in values:
            values[key] = base / values[key]
    values["allow_websocket_origin"] = tuple(values.get("allow_websocket_origin") or ())
    routes = Config().routes | (values.get("routes") or {})
    if "{run_id}" not in routes["run_detail"]:
        raise ConfigError(f"{source}: routes.run_detail must contain {{run_id}}")
    values["routes"] = routes
    try:
        config = Config(**values, source=source)
        int(config.port), float(config.rescan_seconds), float(config.push_min_interval_seconds)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config
