"""A component's view state as a URL's query string: the one codec every page uses.

A component whose view state a page keeps in its URL derives from `UrlState` and names the
parameters the URL carries (`url_params`); a parameter whose text is not its plain `str()`
names its form in `url_texts` (the runs grid's `status=FAILED,TERMINATED`, `descending=asc`), and
a parameter whose URL name is not its own names it in `url_names` (two components on one page
keep their views in one query string: the fleet search's `page` is `q_page` beside the grid's).
`to_url` gives the values that differ from their defaults, as text; `from_url` takes each
argument on its own, through its parameter's own validation, so a bad value is named in its
own message and every other value is still applied.

Why not `pn.state.location.sync` (Panel 1.9.4, read in panel/io/location.py): it parses each
value by its look before a parameter sees it (`panel.util.parse_query`: `?search=007` arrives
as the int 7, `?group=true` as True, `?status=[FAILED]` is dropped); it applies all values of
a component in one `param.update`, so one bad value loses all of them; writing back it cannot
remove an argument (a value back at its default stays in the URL, and None is written as
`null`), and its first sync writes every parameter, defaults included, into the address; and
its browser side pushes history entries but never listens to back/forward. Links the pages
have always made would change or break. The browser side stays ours too
(`dashboard.pages.url_state`), so the URL has one mechanism, written once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import param


@dataclass(frozen=True)
class UrlText:
    """How a parameter reads and writes as query-string text, when not as its plain `str()`."""

    parse: Callable[[str], object]
    format: Callable[[object], str]
    #: What to use instead, for the message about a value that cannot be used.
    hint: str = ""


#: A list of names, comma-separated (`status=FAILED,TERMINATED`), upper-cased as written.
NAMES = UrlText(parse=lambda text: [name.strip().upper() for name in text.split(",") if name.strip()],
                format=",".join)


def word_for(true: str, false: str) -> UrlText:
    """A Boolean as one of two words (`descending=desc`/`asc`)."""
    return UrlText(parse=lambda text: {true: True, false: False}[text],
                   format=lambda value: true if value else false, hint=f"use one of {false}, {true}")


class UrlState(param.Parameterized):
    """View state a page keeps in its URL: a link reproduces it, back and forward return to it."""

    #: The parameters the URL carries, in the order it lists them.
    url_params: ClassVar[tuple[str, ...]] = ()
    #: The parameters whose text is not their plain str() (see UrlText).
    url_texts: ClassVar[dict[str, UrlText]] = {}
    #: The parameters whose name in the URL is not their own.
    url_names: ClassVar[dict[str, str]] = {}

    @classmethod
    def url_arg_names(cls) -> tuple[str, ...]:
        """The names of the URL's arguments this view state reads and writes."""
        return tuple(cls.url_names.get(name, name) for name in cls.url_params)

    def to_url(self) -> dict[str, str]:
        """The URL's parameters that differ from their defaults, as query-string text."""
        values = {}
        for name in self.url_params:
            value = getattr(self, name)
            if value != self.param[name].default and value is not None:
                text = self.url_texts.get(name)
                values[self.url_names.get(name, name)] = text.format(value) if text else str(value)
        return values

    def from_url(self, args: dict[str, str]) -> list[str]:
        """Take what a URL says, one argument at a time; return a message for each value that
        could not be used (the others are applied)."""
        # A bare instance checks each value alone: the parameters without the component's own
        # set-up (no store, no widgets, no query).
        problems, values, probe = [], {}, type(self).__new__(type(self))
        param.Parameterized.__init__(probe)
        for name in self.url_params:
            arg = self.url_names.get(name, name)
            if arg not in args:
                continue
            text = args[arg]
            try:
                value = self._parse(name, text)
                probe.param.update({name: value})  # the parameter's own validation
            except (ValueError, KeyError, TypeError):
                problems.append(f"ignored {arg}={text!r} from the URL: {self._hint(name)}")
                continue
            values[name] = value
        self.param.update(values)
        return problems

    def _parse(self, name: str, text: str) -> object:
        if name in self.url_texts:
            return self.url_texts[name].parse(text)
        parameter = self.param[name]
        if isinstance(parameter, param.Integer) or (
                isinstance(parameter, param.Selector) and all(isinstance(o, int) for o in parameter.objects)):
            return int(text)
        return text

    def _hint(self, name: str) -> str:
        parameter = self.param[name]
        if name in self.url_texts and self.url_texts[name].hint:
            return self.url_texts[name].hint
        objects = getattr(parameter, "objects", None)
        if objects:
            return f"use one of {', '.join(map(str, objects))}"
        if isinstance(parameter, param.Integer):
            low, high = parameter.bounds or (None, None)
            if low is not None and high is not None and high < 1000:
                return f"use a whole number from {low} to {high}"
            return "use a whole number" + (f" from {low}" if low is not None else "")
        return "use text"
