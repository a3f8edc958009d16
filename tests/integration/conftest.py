# SPDX-License-Identifier: AGPL-3.0-or-later
# pytest fixtures for the integration tests: a per-test Stack (broker, Redis, router, test
# connectors) torn down whatever happens, log tails printed on failure, and a per-test time
# bound (@pytest.mark.timeout(seconds)) that works without the pytest-timeout plugin.

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

DEFAULT_TEST_TIMEOUT = 120


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): fail the test after this long")
    config.addinivalue_line("markers", "needs_router: needs the trestle-router binary")
    config.addinivalue_line("markers", "slow: paced by a real server (minutes); CI's sanitizer "
                            "run leaves these out (-m 'not slow'), the main run has them")


def pytest_collection_modifyitems(config, items):
    missing = not harness.bin_path("trestle-router").exists()
    skip = pytest.mark.skip(reason=f"{harness.bin_path('trestle-router')} not built")
    for item in items:
        if missing and "needs_router" in item.keywords:
            item.add_marker(skip)


class _TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """SIGALRM bound on the test body unless pytest-timeout is there to do it."""
    if item.config.pluginmanager.hasplugin("timeout"):
        yield
        return
    m = item.get_closest_marker("timeout")
    secs = int(m.args[0]) if m and m.args else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise _TestTimeout(f"test exceeded its {secs}s bound")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(secs)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(node):
    return any(getattr(node, "rep_" + w, None) is not None and getattr(node, "rep_" + w).failed
               for w in ("setup", "call"))


@pytest.fixture
def stack(request, tmp_path):
    """An empty Stack: the test starts what it needs."""
    s = harness.Stack(tmp_path, request.node.name)
    try:
        yield s
    finally:
        failed = _failed(request.node)
        try:
            s.teardown()
        finally:
            if failed:
                print(f"\n---- logs of {request.node.name} (work dir {tmp_path})")
                print(s.log_tails())
        bad = s.sanitizer_reports()
        assert not bad, "sanitizer reports in the router log:\n" + "\n".join(bad[:20])


@pytest.fixture
def infra(stack):
    """A Stack with a broker and Redis running."""
    return stack.start_infra()
