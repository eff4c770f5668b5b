"""pytest setup for bpftail's integration suites (test_*.py here and in docker/).

Run from the repository root, after a build:

    /usr/bin/python3 -m pytest tests/integration [--build DIR] [-k PATTERN] [-x] [--junitxml F]

Every test takes the fixture `ctx` (a lib.Ctx on the build directory, cleaned up after the
test); `fake_loki` and `agent` start the test Loki server and bpftail, stopped after the test.
A test that cannot run here (lib.Skip, or a pytest skip) is reported as a failure with its
reason: nothing is skipped silently. At the end come the table of scenarios (written, received,
duplicates, lost) and one line "integration: N passed, N failed".
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import lib  # noqa: E402

TABLE = pytest.StashKey[list]()


def pytest_addoption(parser):
    parser.addoption("--build", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "build"),
                     help="bpftail build directory (default: the repository's build/)")


def pytest_configure(config):
    config.stash[TABLE] = []


@pytest.fixture
def ctx(request):
    """lib.Ctx on the build directory; its cleanups (servers, agents, temp dirs) run after the test."""
    c = lib.Ctx(request.config.getoption("--build"))
    c.table = request.config.stash[TABLE]
    yield c
    c.cleanup()


@pytest.fixture
def fake_loki(ctx):
    """Starts a test Loki server: fake_loki(discard=False) -> lib.FakeLoki, killed after the test."""
    def start(**kw):
        return lib.FakeLoki(ctx, **kw)
    return start


@pytest.fixture
def agent(ctx):
    """Starts bpftail: agent(config_text, **lib.Agent kwargs) -> started lib.Agent, killed after
    the test if still running."""
    def start(config_text, **kw):
        return lib.Agent(ctx, config_text, **kw).start()
    return start


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if call.excinfo is not None and call.excinfo.errisinstance(lib.Skip):
        rep.outcome = "failed"
        rep.longrepr = "cannot run here: %s" % call.excinfo.value
    elif rep.skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = "skipped, which counts as failed here: %s" % reason


def _reason(rep):
    if isinstance(rep.longrepr, str):
        return rep.longrepr.splitlines()[0]
    crash = getattr(rep.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return crash.message.splitlines()[0]
    lines = [ln for ln in str(rep.longrepr).splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "failed"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    table = config.stash[TABLE]
    if table:
        tr.write_line("")
        tr.write_line("%-44s %12s %12s %10s %8s" % ("scenario", "written", "received", "duplicates", "lost"))
        for row in table:
            tr.write_line("%-44s %12d %12d %10d %8d" % tuple(row))
    # One result per test (or per module that failed to import): failed if any phase failed.
    results = {}
    for reports in tr.stats.values():
        for rep in reports:
            if not hasattr(rep, "outcome") or not hasattr(rep, "nodeid"):
                continue
            if rep.failed:
                if results.get(rep.nodeid) is None or results[rep.nodeid] is True:
                    results[rep.nodeid] = "%s%s" % ("" if rep.when in (None, "call") else rep.when + ": ",
                                                    _reason(rep))
            else:
                results.setdefault(rep.nodeid, True)
    failed = {k: v for k, v in results.items() if v is not True}
    if failed:
        tr.write_line("")
        for nodeid, why in sorted(failed.items()):
            tr.write_line("FAIL %s: %s" % (nodeid, why))
    tr.write_line("integration: %d passed, %d failed" % (len(results) - len(failed), len(failed)))
