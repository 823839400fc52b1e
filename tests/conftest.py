"""Shared fixtures (data directory, artifacts folder, loopback servers, notebooks via papermill) and the slow guard.

The guard (:mod:`tests.helpers.slow_guard`) fails a test that is not marked ``slow`` but starts a subprocess, a
server, a Jupyter kernel or a browser, so ``pytest -m "not slow"`` stays the fast loop.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.helpers import schedule, slow_guard, timeline
from tests.helpers.paths import NOTEBOOKS, SHARED_DATA, artifacts_dir

# Where the environment sets PYTHONDONTWRITEBYTECODE (container images often do), pytest would rewrite the asserts
# of every test module again in every worker (about 4 s of each worker's collection here); the suite keeps its
# rewritten modules in __pycache__ as Python does by default. Set before any test module is imported.
sys.dont_write_bytecode = False

# Tests read the published data from ../shared/data unless the caller chose another folder.
if not os.environ.get("DISTILL_KIT_DATA_DIR") and SHARED_DATA.is_dir():
    os.environ["DISTILL_KIT_DATA_DIR"] = str(SHARED_DATA)


def pytest_configure(config: pytest.Config) -> None:
    slow_guard.install()


@pytest.hookimpl(trylast=True)  # after -m/-k deselected: the files are weighed by the tests that will run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (:mod:`tests.helpers.schedule`), so the two xdist workers finish at about the same time."""
    schedule.reorder(items, [item.nodeid for item in items], schedule.load_durations())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Guard every phase (setup, call, teardown) of a test not marked slow; fixtures it sets up count too.

    Each test's span goes to the timeline file when ``DISTILL_KIT_TEST_TIMELINE`` names one
    (:mod:`tests.helpers.timeline`)."""
    guarded = item.get_closest_marker("slow") is None
    slow_guard.GUARD.active = item.nodeid if guarded else None
    slow_guard.GUARD.caught = []
    start = timeline.now()
    try:
        return (yield)
    finally:
        slow_guard.GUARD.active = None
        slow_guard.contain()
        timeline.record(item.nodeid, start, timeline.now())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    """What the guard caught is the failure, even where the code under test swallowed it (e.g. in a thread)."""
    report = yield
    if slow_guard.GUARD.caught and slow_guard.GUARD.active == item.nodeid and not report.skipped:
        report.outcome = "failed"
        report.longrepr = slow_guard.OneLine(slow_guard.GUARD.message())
        slow_guard.GUARD.stopped += slow_guard.GUARD.caught
        slow_guard.GUARD.caught = []
    return report


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("DISTILL_KIT_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("no data directory: set DISTILL_KIT_DATA_DIR to a folder laid out like ../shared/data")
    return Path(value)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """tests/artifacts/: screenshots and pages worth a look after the run."""
    return artifacts_dir()


@pytest.fixture
def loopback() -> Iterator[Any]:
    """An in-process :class:`distill_kit.testing.LoopbackServer` (no latency, no faults) for one test (slow)."""
    from distill_kit.testing import LoopbackServer

    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def run_notebook(tmp_path: Path) -> Callable[..., Path]:
    """Execute ``notebooks/<name>`` with papermill (kernel python3, cwd notebooks/) and return the output path."""
    import papermill as pm

    def run(name: str, parameters: dict[str, Any] | None = None, timeout: int = 600) -> Path:
        src = NOTEBOOKS / name
        assert src.exists(), f"no notebook {src}"
        out = tmp_path / f"executed-{name}"
        pm.execute_notebook(str(src), str(out), parameters=parameters or {}, kernel_name="python3",
                            cwd=str(NOTEBOOKS), progress_bar=False, execution_timeout=timeout)
        return out

    return run
