"""The network guard of the test suite (tests/_netguard/, installed by tests/conftest.py) blocks
connections beyond loopback, fails a test that tried one even when the error was swallowed, and
covers child processes. 203.0.113.1 (TEST-NET-3) is never routable, so even a broken guard sends
nothing anywhere that matters."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import textwrap
import threading

import netguard
import pytest
from conftest import NETGUARD_DIR

OUTSIDE = ("203.0.113.1", 80)


@pytest.fixture
def local_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_connections_beyond_loopback_raise(local_server):
    try:
        with pytest.raises(netguard.NetworkBlocked, match="203.0.113.1"):
            socket.create_connection(OUTSIDE, timeout=1)
        with pytest.raises(netguard.NetworkBlocked):
            socket.create_connection(("example.com", 443), timeout=1)   # refused before DNS
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            with pytest.raises(netguard.NetworkBlocked):
                s.connect(OUTSIDE)
            with pytest.raises(netguard.NetworkBlocked):
                s.connect_ex(OUTSIDE)
        assert len(netguard.ATTEMPTS) == 4
    finally:
        netguard.ATTEMPTS.clear()   # these attempts were the point of the test, not a leak
    # loopback stays open: by address and by name
    socket.create_connection(("127.0.0.1", local_server), timeout=5).close()
    socket.create_connection(("localhost", local_server), timeout=5).close()
    assert netguard.ATTEMPTS == []


def test_a_child_process_is_guarded_and_reports_back(tmp_path):
    log = tmp_path / "child.log"   # not the session's log: this attempt is deliberate
    proc = subprocess.run(
        [sys.executable, "-c", "import socket; socket.create_connection(('203.0.113.1', 80), 1)"],
        env={**os.environ, netguard.LOG_ENV: str(log)}, capture_output=True, text=True,
        timeout=120, check=False)
    assert proc.returncode != 0
    assert "NetworkBlocked" in proc.stderr and "203.0.113.1" in proc.stderr
    assert "203.0.113.1" in log.read_text()
    assert str(NETGUARD_DIR) == os.environ["PYTHONPATH"].split(os.pathsep)[0]


def test_a_test_that_swallows_the_error_still_fails(tmp_path):
    """A separate pytest run with the guard's plugin: the test that connects out and hides the
    error fails; the one that talks to 127.0.0.1 passes."""
    (tmp_path / "test_inner.py").write_text(textwrap.dedent("""
        import http.server, socket, threading

        def test_hides_a_connection_attempt():
            try:
                socket.create_connection(("203.0.113.1", 80), timeout=1)
            except Exception:
                pass   # what a library with a broad except does

        def test_loopback_is_fine():
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     http.server.BaseHTTPRequestHandler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            socket.create_connection(server.server_address, timeout=5).close()
            server.shutdown()
            server.server_close()
    """))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    log = tmp_path / "inner.log"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "netguard_plugin", "-p", "no:cacheprovider",
         "-q", "-rf", str(tmp_path / "test_inner.py")],
        cwd=tmp_path, env={**os.environ, netguard.LOG_ENV: str(log)}, capture_output=True,
        text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    assert "FAILED test_inner.py::test_hides_a_connection_attempt" in proc.stdout
    assert ("1 network connection(s) attempted during the test: network connection to "
            "('203.0.113.1', 80) blocked") in proc.stdout, proc.stdout[-3000:]
    assert "203.0.113.1" in log.read_text()
