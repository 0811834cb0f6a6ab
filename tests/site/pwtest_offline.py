"""Tests reach 127.0.0.1 only: a look-up of any other host fails at once, as on a machine with
no network, and is written down (``PWTEST_FOREIGN_HOSTS``) with the test that made it, so the
suite says which test went for the outside world instead of waiting out its retries."""

import ipaddress
import os
import socket

ENV = "PWTEST_FOREIGN_HOSTS"
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_local(host) -> bool:
    if host is None:  # a server binding every address, or a socket's own name
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").lower().rstrip(".")
    if host in LOCAL_NAMES or host == "":
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def keep_off_the_network() -> None:
    """Patch this process's ``socket.getaddrinfo`` (every client here resolves through it:
    httpx, asyncio, smtplib); idempotent."""
    real = socket.getaddrinfo
    if getattr(real, "_paperwire_offline", False):
        return

    def getaddrinfo(host, *args, **kwargs):
        if is_local(host):
            return real(host, *args, **kwargs)
        log = os.environ.get(ENV)
        if log:
            who = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]
            with open(log, "a", encoding="utf-8") as sink:
                sink.write(f"{who}\t{host!s}\n")
        raise socket.gaierror(socket.EAI_NONAME, f"tests reach 127.0.0.1 only, not {host}")

    getaddrinfo._paperwire_offline = True  # type: ignore[attr-defined]
    socket.getaddrinfo = getaddrinfo
