"""Answers that sessions share: a query asked once per index version and arguments.

Many sessions show the same view between two ingest steps; each answer is kept while it can
still be asked for, and let go once a write makes a new version.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable

#: How many shared answers each shared query keeps (of the current index version only).
SHARED_ANSWERS_KEPT = 32


def shared_per_version(function: Callable) -> Callable:
    """`function(index, *args)`, answered once per index version and arguments (`index`: an
    Index or a Store, anything with a `version` raised by every write, hashed by identity).

    Sessions that ask for the same view between two ingest steps share one query (tabs paced
    by their browsers ask at different moments, so not all of them do). The answer is
    shared, so callers must not change it. Arguments must be hashable (a `now` to the
    second, say).

    Only answers that can still be asked are kept: those of the index's current version, the
    `SHARED_ANSWERS_KEPT` last used. An answer of an earlier version, or of a second gone by, is
    never asked for again, and a server that kept 256 of them per query grew by about 150 kB with
    every page opened.
    """
    answers: OrderedDict[tuple, object] = OrderedDict()
    lock = threading.Lock()

    @functools.wraps(function)
    def latest(index, *args):
        version = index.version
        key = (index, version, *args)
        with lock:
            if key in answers:
                answers.move_to_end(key)
                return answers[key]
        answer = function(index, *args)
        with lock:
            if index.version == version:  # not already out of date
                for stale in [kept for kept in answers if kept[0] is index and kept[1] != version]:
                    del answers[stale]
                answers[key] = answer
                while len(answers) > SHARED_ANSWERS_KEPT:
                    answers.popitem(last=False)
        return answer

    return latest
