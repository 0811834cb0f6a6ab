"""The tests' local HTTP server (conftest.http_server): quiet when a client hangs up early."""

from __future__ import annotations

import socket
import struct
import time

from .conftest import Route


def test_a_client_that_hangs_up_before_the_answer_prints_no_traceback(http_server, capfd):
    """A client under test that gives up (a timeout, a stop) resets the line while the
    server waits: writing the answer then fails with a ConnectionError, which socketserver
    printed as a traceback into the suite's output (the last CI log had one)."""
    http_server.routes["/slow"] = Route(b"x" * 100_000, delay=0.3)
    client = socket.create_connection(("127.0.0.1", http_server.port))
    client.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    # SO_LINGER 0: close sends a reset, so the server's write fails instead of being buffered
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    deadline = time.monotonic() + 5
    while http_server.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    while http_server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the handler writes, fails and returns after leaving its delay
    assert [path for _, path, _, _ in http_server.requests] == ["/slow"]
    assert "Traceback" not in capfd.readouterr().err
