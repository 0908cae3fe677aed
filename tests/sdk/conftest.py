"""Session fixtures shared by the SDK tests: one `videovector serve` on a fresh data folder
(with the tiny CLIP checkpoint as its visual model), an admin SDK client, the main index and
bikes.mp4 in it. A failing test gets the tail of the server's stderr in its report; the server is
stopped with SIGTERM at the end and must exit 0.

Tests that stop servers (test_shutdown.py) take `data_folder` instead: a folder of their own and
the servers they start on it, killed at the end of the test if still running. A module with a
folder and servers of its own for all its tests (test_delivery.py) registers it with
`report_folder`, so that its failing tests get those servers' stderr too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import videovector
from sdkserver import (
    BINARY,
    MEDIA,
    DataFolder,
    STOP_TIMEOUT_S,
    Ingested,
    Server,
    start_server,
    stop_server,
    unique,
    upload_and_wait,
    write_tiny_clip,
)

_SERVER = pytest.StashKey[Server]()
_FIGURES = pytest.StashKey[list[str]]()
_FOLDER = pytest.StashKey[DataFolder]()
_MODULE_FOLDERS = pytest.StashKey[list[tuple[str, DataFolder]]]()


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CLIP checkpoint, written once and shared (servers only read it)."""
    if not BINARY.exists():
        pytest.exit(f"{BINARY} does not exist: build it first (cargo build)", returncode=2)
    dest: Path = tmp_path_factory.mktemp("clip") / "clip_tiny"
    write_tiny_clip(dest)
    return dest


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, tiny_clip: Path
) -> Iterator[Server]:
    """One server for the session; it must still be running at the end and exit 0 on SIGTERM."""
    root: Path = tmp_path_factory.mktemp("videovector-serve")
    srv = start_server(root / "data", tiny_clip, root / "serve.stderr")
    request.config.stash[_SERVER] = srv
    yield srv
    if srv.proc.poll() is not None:
        pytest.fail(f"the server died during the session (exit status {srv.proc.returncode}):\n{srv.stderr_tail(60)}")
    status = stop_server(srv.proc)
    if status is None:
        pytest.fail(f"the server ignored SIGTERM for {STOP_TIMEOUT_S} s and was killed:\n{srv.stderr_tail()}")
    if status != 0:
        pytest.fail(f"the server exited {status} after SIGTERM (expected 0):\n{srv.stderr_tail()}")


@pytest.fixture
def data_folder(tmp_path: Path, tiny_clip: Path, request: pytest.FixtureRequest) -> Iterator[DataFolder]:
    """A fresh data folder for one test; servers it started that still run are killed afterwards."""
    folder = DataFolder(tmp_path, tiny_clip)
    request.node.stash[_FOLDER] = folder
    yield folder
    for srv in folder.servers:
        if srv.proc.poll() is None:
            stop_server(srv.proc, force=True)


@pytest.fixture(scope="module")
def report_folder(request: pytest.FixtureRequest) -> Callable[[DataFolder], None]:
    """Register a module's own data folder: a failing test of that module gets the stderr of the
    folder's servers in its report."""
    module = request.node.nodeid
    registry = request.config.stash.setdefault(_MODULE_FOLDERS, [])
    return lambda folder: registry.append((module, folder))


@pytest.fixture(scope="session")
def admin(server: Server) -> Iterator[videovector.VideoVector]:
    """An SDK client holding the bootstrap admin key."""
    with server.client() as client:
        yield client


@pytest.fixture(scope="session")
def main_index(admin: videovector.VideoVector) -> videovector.Index:
    """The index most tests read; bikes.mp4 and rocket.jpg are uploaded into it."""
    return admin.indexes.create(name=unique("sdk-main"))


@pytest.fixture(scope="session")
def bikes(admin: videovector.VideoVector, main_index: videovector.Index) -> Ingested:
    """bikes.mp4 (10 s, 5 hard cuts, no sound) uploaded into the main index."""
    return upload_and_wait(admin, MEDIA / "bikes.mp4", "bikes", main_index.index_id)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Add a line to the figures printed after the run (shown under -q too)."""
    return request.config.stash.setdefault(_FIGURES, []).append


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    srv = item.config.stash.get(_SERVER, None)
    if report.failed and srv is not None:
        state = "running" if srv.proc.poll() is None else f"exited with {srv.proc.returncode}"
        report.sections.append((f"videovector serve stderr, last 40 lines (server {state})", srv.stderr_tail(40)))
    folder = item.stash.get(_FOLDER, None)
    if report.failed and folder is not None:
        for n, own in enumerate(folder.servers):
            state = "running" if own.proc.poll() is None else f"exited with {own.proc.returncode}"
            report.sections.append((f"this test's server #{n} stderr, last 40 lines ({state})", own.stderr_tail(40)))
    for module, shared in item.config.stash.get(_MODULE_FOLDERS, []):
        if report.failed and item.nodeid.startswith(module + "::"):
            for n, own in enumerate(shared.servers):
                state = "running" if own.proc.poll() is None else f"exited with {own.proc.returncode}"
                report.sections.append((f"{module} server #{n} stderr, last 40 lines ({state})", own.stderr_tail(40)))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("videovector serve figures")
        for line in lines:
            terminalreporter.write_line(line)
