"""Alert rules: which runs are worth telling someone about, and how to tell them.

The `alerts` section of panel_serve.yaml, checked when the server starts (a bad setting is a
ConfigError naming it), and the test of a run against a rule. No DuckDB, no Panel: the alerter
(`dashboard.alerts`) hands each rule the run as the index has it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .statuses import STATUSES, UNDER_WAY, UNSUCCESSFUL

#: `${NAME}` in a webhook header: the value of environment variable NAME, read at start.
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class AlertConfigError(ValueError):
    """A bad setting of the alerts section; the message names it (config.py makes it a ConfigError)."""


@dataclass(frozen=True)
class Webhook:
    """POST the alert as JSON to `url`; a failure is retried `retries` times, waiting
    `backoff_seconds`, then twice that, and so on."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()  # secrets already read from the environment
    timeout_seconds: float = 5.0
    retries: int = 3
    backoff_seconds: float = 1.0


@dataclass(frozen=True)
class Command:
    """Run `argv` (no shell) with the alert as JSON on its stdin; retried like a webhook when it
    fails (exit status not 0, or no end within `timeout_seconds`)."""

    argv: tuple[str, ...]
    timeout_seconds: float = 30.0
    retries: int = 1
    backoff_seconds: float = 1.0


@dataclass(frozen=True)
class Rule:
    """Which runs open an incident (all the given conditions hold) and what is done for each."""

    name: str
    statuses: tuple[str, ...] = UNSUCCESSFUL
    group: str | None = None
    task_text: str = ""
    root_cause_only: bool = True
    webhook: Webhook | None = None
    command: Command | None = None
    #: also shown as a notification on every open page whose session asked for them
    browser: bool = False
    #: about running runs once they run late (`dashboard.estimates`), not about status changes
    late: bool = False

    @property
    def actions(self) -> tuple[Webhook | Command, ...]:
        return tuple(action for action in (self.webhook, self.command) if action is not None)

    def matches(self, task: str, group: str | None, status: str, late: bool = False) -> bool:
        """Whether a run of `task` in `group` now in `status` (and `late` or not) is one this rule
        is about.

        Blocked runs are decided by the alerter (they join their root cause's incident). A run
        becomes late with no change published: the alerter asks `estimates.running_estimates`
        on a timer, and only a late rule matches what it finds."""
        return (late == self.late and status in self.statuses
                and (self.group is None or group == self.group)
                and (not self.task_text or self.task_text.lower() in task.lower()))


@dataclass(frozen=True)
class AlertSettings:
    """The alerts section: the rules, how long repeats of one failure are counted instead of
    sent, and where what was sent is remembered (default: beside the index)."""

    rules: tuple[Rule, ...] = ()
    repeat_window_seconds: float = 3600.0
    state_file: Path | None = None

    def state_path(self, index: Path) -> Path:
        return self.state_file or index.with_name(index.name + ".alerts.json")


_RULE_KEYS = {"name", "statuses", "group", "task_text", "root_cause_only", "late", "webhook", "command", "browser"}
_WEBHOOK_KEYS = {"url", "headers", "timeout_seconds", "retries", "backoff_seconds"}
_COMMAND_KEYS = {"argv", "timeout_seconds", "retries", "backoff_seconds"}


def parse_alerts(raw, base: Path, environ=None) -> AlertSettings:
    """The alerts section as settings; AlertConfigError naming the first bad setting."""
    environ = os.environ if environ is None else environ
    if raw is None:
        return AlertSettings()
    if not isinstance(raw, dict):
        raise AlertConfigError("alerts must hold a mapping of settings (rules, repeat_window_seconds, state_file)")
    _known(raw, {"rules", "repeat_window_seconds", "state_file"}, "alerts")
    window = _number(raw.get("repeat_window_seconds", 3600.0), "alerts.repeat_window_seconds", minimum=0)
    state_file = raw.get("state_file")
    if state_file is not None and not isinstance(state_file, str):
        raise AlertConfigError(f"alerts.state_file must be a path, not {state_file!r}")
    rules = raw.get("rules") or []
    if not isinstance(rules, list):
        raise AlertConfigError(f"alerts.rules must be a list of rules, not {rules!r}")
    parsed = tuple(_rule(rule, f"alerts.rules[{n}]", environ) for n, rule in enumerate(rules))
    names = [rule.name for rule in parsed]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise AlertConfigError(f"alerts.rules: two rules are named {duplicate!r}; give each its own name")
    return AlertSettings(parsed, window, base / state_file if state_file else None)


def _rule(raw, where: str, environ) -> Rule:
    if not isinstance(raw, dict):
        raise AlertConfigError(f"{where} must be a mapping (name, statuses, ..., webhook and/or command)")
    _known(raw, _RULE_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AlertConfigError(f"{where}.name is required: a short text naming the rule")
    statuses = raw.get("statuses", list(UNDER_WAY if raw.get("late") is True else UNSUCCESSFUL))
    if isinstance(statuses, str):
        statuses = [statuses]
    if not isinstance(statuses, list) or not statuses or not all(isinstance(s, str) for s in statuses):
        raise AlertConfigError(f"{where}.statuses must be a list of statuses, not {statuses!r}")
    statuses = tuple(s.upper() for s in statuses)
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise AlertConfigError(f"{where}.statuses: unknown status {unknown[0]!r}; use any of {', '.join(STATUSES)}")
    for key in ("group", "task_text"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise AlertConfigError(f"{where}.{key} must be text, not {raw[key]!r}")
    for key in ("root_cause_only", "browser", "late"):
        if not isinstance(raw.get(key, True), bool):
            raise AlertConfigError(f"{where}.{key} must be true or false, not {raw[key]!r}")
    late = raw.get("late", False)
    if late and not set(statuses) <= set(UNDER_WAY):  # a finished run is never late
        raise AlertConfigError(f"{where}.statuses: a late rule is about runs still under way; give only "
                               f"{' and '.join(UNDER_WAY)}, or leave statuses out")
    webhook = _webhook(raw["webhook"], f"{where}.webhook", environ) if raw.get("webhook") is not None else None
    command = _command(raw["command"], f"{where}.command") if raw.get("command") is not None else None
    if webhook is None and command is None and not raw.get("browser"):
        raise AlertConfigError(f"{where} has no action: give it a webhook, a command or browser: true")
    return Rule(name.strip(), statuses, raw.get("group") or None, raw.get("task_text") or "",
                raw.get("root_cause_only", True), webhook, command, raw.get("browser", False), late)


def _webhook(raw, where: str, environ) -> Webhook:
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, dict):
        raise AlertConfigError(f"{where} must be a URL or a mapping (url, headers, timeout_seconds, retries, ...)")
    _known(raw, _WEBHOOK_KEYS, where)
    written = raw.get("url")
    # A chat webhook's URL is itself a secret: it may come from the environment (never shown).
    url = _from_environment(written, f"{where}.url", environ) if isinstance(written, str) else written
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AlertConfigError(f"{where}.url must be an http(s) URL, not {written!r}")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise AlertConfigError(f"{where}.headers must be a mapping of text to text, not {headers!r}")
    resolved = tuple((name, _from_environment(value, f"{where}.headers.{name}", environ))
                     for name, value in headers.items())
    return Webhook(url, resolved, *_delivery(raw, where, Webhook))


def _command(raw, where: str) -> Command:
    if isinstance(raw, list):
        raw = {"argv": raw}
    if not isinstance(raw, dict):
        raise AlertConfigError(f"{where} must be a list of arguments or a mapping (argv, timeout_seconds, ...)")
    _known(raw, _COMMAND_KEYS, where)
    argv = raw.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
        raise AlertConfigError(f"{where}.argv must be a non-empty list of arguments (run without a shell), "
                               f"not {argv!r}")
    return Command(tuple(argv), *_delivery(raw, where, Command))


def _delivery(raw: dict, where: str, kind) -> tuple[float, int, float]:
    defaults = kind.__dataclass_fields__
    timeout = _number(raw.get("timeout_seconds", defaults["timeout_seconds"].default), f"{where}.timeout_seconds",
                      minimum=0.001)
    retries = raw.get("retries", defaults["retries"].default)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise AlertConfigError(f"{where}.retries must be a whole number from 0 to 10, not {retries!r}")
    backoff = _number(raw.get("backoff_seconds", defaults["backoff_seconds"].default), f"{where}.backoff_seconds",
                      minimum=0)
    return timeout, retries, backoff


def _from_environment(value: str, where: str, environ) -> str:
    """`value` with each ${NAME} replaced by that environment variable (its absence is an error)."""
    def replace(match: re.Match) -> str:
        if match[1] not in environ:
            raise AlertConfigError(f"{where} names the environment variable ${match[1]}, which is not set")
        return environ[match[1]]
    return ENV_REFERENCE.sub(replace, value)


def _number(value, where: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise AlertConfigError(f"{where} must be a number of at least {minimum}, not {value!r}")
    return float(value)


def _known(raw: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise AlertConfigError(f"unknown setting {where}.{unknown[0]}; known: {', '.join(sorted(known))}")
