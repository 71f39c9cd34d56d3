"""The suite on two cores: `make test` runs pytest-xdist, ``-n 2 --dist loadfile``.

A test module is one unit of work (its module fixtures, whole benchmark runs, are built once) and
the units go to whichever worker is free, in collection order. The longest modules are moved to
the front under xdist so that neither worker is left with one of them at the end while the other
idles (xdist's own reordering, by number of tests, would put them last; `make test` turns it off).
A plain serial run keeps pytest's order.

Child processes (the xdist workers and the tests' own subprocesses) get the environment pytest was
started with: pytest imports readline, which exports its idea of the terminal's size (COLUMNS=80,
LINES=24) to the C environment but not to ``os.environ``. A worker then started with COLUMNS=80
and `exprssl.cli`'s console, made at import, kept 80 columns whatever a test set later.
"""

from __future__ import annotations

import os

import pytest

for _name in ("COLUMNS", "LINES"):  # what readline exported, undone (see above)
    if _name in os.environ:
        os.putenv(_name, os.environ[_name])
    else:
        os.unsetenv(_name)

# modules of more than about a minute in a serial run (2 cores, `--durations`), longest first
LONGEST_FIRST = (
    "test_full_fraction.py",
    "test_protocol.py",
    "test_store.py",
    "test_controls.py",
    "test_cli_bad_inputs.py",
    "test_bad_io.py",
    "test_model.py",
    "test_docs.py",
    "test_cli.py",
    "test_distributed.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: same order within
