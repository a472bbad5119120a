"""Tests make no network connection beyond loopback.

`install()` patches `socket.socket.connect`, `socket.socket.connect_ex` and
`socket.create_connection` so that any address that is not loopback (127.0.0.0/8, ::1,
"localhost") or a Unix socket raises `NetworkBlocked` before a packet leaves. Host names are
refused before they are resolved (resolving is network traffic too).

A library may swallow the error (``except Exception``), so every blocked attempt is also
recorded: in `ATTEMPTS` in this process, and appended to the file named by
``LM_EVAL_BIAS_NETGUARD_LOG`` when set (how child processes report back). tests/conftest.py
fails any test during which an attempt was recorded, here or in a child.

Standard library only: child processes import it through sitecustomize.py next to it.
"""

from __future__ import annotations

import ipaddress
import os
import socket

LOG_ENV = "LM_EVAL_BIAS_NETGUARD_LOG"
ATTEMPTS: list[str] = []

_ORIGINAL: dict[str, object] = {}


class NetworkBlocked(RuntimeError):
    """Raised instead of connecting to a non-loopback address. Not an OSError on purpose: code
    that handles network failures (``except OSError``) must not turn it into a quiet retry."""


def is_loopback(address: object) -> bool:
    """True for what may be reached from tests: loopback IPs, "localhost", Unix socket paths."""
    if isinstance(address, (str, bytes, bytearray)):
        return True  # AF_UNIX path (or abstract socket name)
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip().lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost: resolving it would use the network


def _block(address: object) -> None:
    what = f"network connection to {address!r} blocked (tests stay on 127.0.0.1)"
    ATTEMPTS.append(what)
    log = os.environ.get(LOG_ENV)
    if log:
        try:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"pid {os.getpid()}: {what}\n")
        except OSError:
            pass
    raise NetworkBlocked(what)


def install() -> None:
    """Patch the socket module (idempotent)."""
    if _ORIGINAL:
        return
    _ORIGINAL.update(connect=socket.socket.connect, connect_ex=socket.socket.connect_ex,
                     create_connection=socket.create_connection)
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection

    def connect(self, address):
        if self.family != getattr(socket, "AF_UNIX", None) and not is_loopback(address):
            _block(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family != getattr(socket, "AF_UNIX", None) and not is_loopback(address):
            _block(address)
        return real_connect_ex(self, address)

    def create_connection(address, *args, **kwargs):
        if not is_loopback(address):
            _block(address)
        return real_create_connection(address, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.create_connection = create_connection


def uninstall() -> None:
    if not _ORIGINAL:
        return
    socket.socket.connect = _ORIGINAL["connect"]
    socket.socket.connect_ex = _ORIGINAL["connect_ex"]
    socket.create_connection = _ORIGINAL["create_connection"]
    _ORIGINAL.clear()


def read_log(path: str | os.PathLike | None) -> list[str]:
    """Lines child processes appended to the log file (none when it does not exist)."""
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            return [ln.rstrip("\n") for ln in fh if ln.strip()]
    except FileNotFoundError:
        return []
