"""pytest side of the network guard (netguard.py): fail the test phase during which a connection
beyond loopback was attempted, here or in a child process, even when the code under test
swallowed the `NetworkBlocked` error.

tests/conftest.py imports these hooks; a separate pytest run can load them with
``-p netguard_plugin`` (this folder on PYTHONPATH), which is how the guard's own test proves it
fails a test.
"""

from __future__ import annotations

import os

import netguard
import pytest

_log_lines_seen = [0]


def _collect() -> list[str]:
    """Attempts recorded since the last call: in this process and in the children's log."""
    found = list(netguard.ATTEMPTS)
    netguard.ATTEMPTS.clear()
    lines = netguard.read_log(os.environ.get(netguard.LOG_ENV))
    own = f"pid {os.getpid()}:"   # this process's attempts are in ATTEMPTS already
    found += [ln for ln in lines[_log_lines_seen[0]:] if not ln.startswith(own)]
    _log_lines_seen[0] = len(lines)
    return found


def _guarded(phase: str):
    try:
        result = yield
    except BaseException:
        _collect()  # the phase failed already; its blocked attempts belong to it, not the next
        raise
    attempts = _collect()
    if attempts:
        pytest.fail(f"{len(attempts)} network connection(s) attempted during {phase}: "
                    f"{attempts[0]}", pytrace=False)
    return result


def pytest_configure(config):
    netguard.install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _guarded("setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _guarded("the test"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    return (yield from _guarded("teardown"))
