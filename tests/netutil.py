"""Small helpers for tests that open sockets or drive external client tools."""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` (binding port 0 picks them apart)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for both UDP and TCP on {host}")


def require_tool(name: str) -> str:
    """The path of an external tool; skip the test without it, but fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: interop tools must be present)")
        pytest.skip(message)
    return path
