"""Benchmarks: our figures side by side with the simplest baseline, printed as one table.

The test-data builders and the real servers are the tests' own (tests/builders.py,
tests/serving.py), imported by the same top-level names as pytest's `pythonpath` gives them.
"""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
