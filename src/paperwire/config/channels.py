"""Each channel's settings as the config reads them: parsed and checked once, when it loads.

The SMTP URL becomes :class:`SmtpSettings` here and nowhere else; an Apprise URL is read by
Apprise's own parser (nothing is sent). Delivery (:mod:`paperwire.deliver`) uses what this
module made; the config never reaches up into delivery code to check a value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import ConfigError

SMTP_OPTIONS = {
    "timeout": "seconds, e.g. timeout=30",
    "verify": "verify=0 or verify=1",
    "starttls": "starttls=1 for a relay that offers STARTTLS on port 465",
    "insecure_login": "insecure_login=1 to log in where the relay offers no TLS",
}
_SMTP_EXPECTED = "expected smtp://[user:pass@]host[:port] or smtps://… (implicit TLS)"


@dataclass(frozen=True)
class SmtpSettings:
    """Parsed ``PAPERWIRE_SMTP_URL``: ``smtp://user:pass@host:587`` or ``smtps://…`` (implicit TLS).

    With ``smtp://`` STARTTLS is used whenever the server offers it.
    """

    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    # seconds per SMTP command, only when the URL says (?timeout=): by default none, and each
    # message's deadline (sender.timeout) bounds it all; a per-command 30 s cut off a relay that
    # answered DATA at 35 s within a 60 s deadline, and sent the message again (found in review)
    timeout: float | None = None
    verify_tls: bool = True
    # log in on a connection without TLS (a relay that offers no STARTTLS): the password then
    # crosses the network as it is, so only when the URL says so
    insecure_login: bool = False

    def __repr__(self) -> str:  # never print the password
        return f"SmtpSettings(host={self.host!r}, port={self.port}, user={self.username!r})"

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        """The settings an SMTP URL gives; ConfigError (never quoting it) if it is not one."""
        try:
            return parse_smtp_url(url)
        except ValueError as exc:
            raise ConfigError(f"PAPERWIRE_SMTP_URL: {exc}") from None


CREDENTIALS_CUT = (
    "a user name or password in this URL holds '#', '/' or '?', which end it (the rest would "
    "be read, and shown, as the address): write them %23, %2F and %3F (an '@' in the path: %40)"
)


def credentials_cut(url: str, netloc: str) -> bool:
    """Whether a URL's credentials were cut short by a character they must not hold bare:
    "https://alice:2024#pass@host/feed" is host "alice", port 2024, and a fragment holding
    the password and the real host; quoted in an error, or stored and shown as the feed's
    address, the password would be in the clear. An "@" after a host with a colon (a port,
    or a cut password) is read as that; "https://medium.com/feed/@user" has none."""
    rest = url.split("://", 1)[-1][len(netloc) :]
    return "@" in rest and ":" in netloc and "@" not in netloc


_FLAGS = ("verify", "starttls", "insecure_login")


def _flag(key: str, value: str) -> bool:
    """An on/off option of the SMTP URL, written as any of them takes it."""
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"{key}={value!r} is not 0 or 1")


def parse_smtp_url(url: str) -> SmtpSettings:
    """An SMTP URL's settings; ValueError says what is wrong, in words that never repeat its
    password (the config reports it at the setting's line)."""
    try:
        parts = urlsplit(url.strip())
        cut = credentials_cut(url.strip(), parts.netloc)
        port = None if cut else parts.port
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    if cut:
        raise ValueError(CREDENTIALS_CUT)
    if parts.scheme not in ("smtp", "smtps"):
        scheme = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ValueError(f"{scheme} is not an SMTP URL; {_SMTP_EXPECTED}")
    if not parts.hostname:
        raise ValueError(f"no host name; {_SMTP_EXPECTED}")
    if port == 0:
        raise ValueError("the port is not a number from 1 to 65535")
    # each TLS style on the other's well-known port almost never works: smtp:// on 465 waits
    # for a greeting the relay sends only after TLS (the whole sender.timeout), smtps:// on 587
    # (or 25) gets 'SSL: WRONG_VERSION_NUMBER'; both were retried for hours as an outage. A
    # few relays (test sandboxes) offer STARTTLS on every port: ?starttls=1 says so.
    said_starttls = any(
        key == "starttls" and _flag(key, value) for key, value in parse_qsl(parts.query)
    )
    if parts.scheme == "smtp" and port == 465 and not said_starttls:
        raise ValueError(
            "port 465 expects TLS from the start: write smtps://…:465 (smtp:// is for "
            "STARTTLS, on port 587; a relay that offers STARTTLS on 465: add ?starttls=1)"
        )
    if parts.scheme == "smtps" and port in (25, 587):
        raise ValueError(
            f"port {port} takes STARTTLS: write smtp://…:{port} (smtps:// is for TLS from the "
            "start, on port 465)"
        )
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in SMTP_OPTIONS:
            known = ", ".join(f"{k} ({v})" for k, v in SMTP_OPTIONS.items())
            raise ValueError(f"unknown option {key!r}; the options are {known}")
        if key == "timeout":
            try:
                ok = 0 < float(value) <= 600
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"timeout={value!r} is not a number of seconds from 0 to 600")
        on = _flag(key, value) if key in _FLAGS else False
        if key == "starttls" and on and parts.scheme != "smtp":
            raise ValueError("starttls=1 goes with smtp:// (smtps:// is TLS from the start)")
        if key == "insecure_login" and on and parts.scheme != "smtp":
            raise ValueError("insecure_login=1 goes with smtp:// (smtps:// is always TLS)")
        options[key] = ("1" if on else "0") if key in _FLAGS else value
    implicit = parts.scheme == "smtps"
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if implicit else 587),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
        timeout=float(options["timeout"]) if "timeout" in options else None,
        verify_tls=options.get("verify", "1") == "1",
        insecure_login=options.get("insecure_login") == "1",
    )


def apprise_url_problem(url: str) -> str | None:
    """Why Apprise cannot use this ``notify`` URL, naming its scheme only (the rest may be a
    token); None if Apprise can. Apprise's parser only reads the URL: nothing is sent."""
    import apprise  # Apprise loads its plugins: only when a config has notify URLs
    from apprise.manager_plugins import NotificationManager

    scheme = urlsplit(url.strip()).scheme.lower() if "://" in url else ""
    if not scheme:
        return "is not a URL (expected SERVICE://…, e.g. discord://… or tgram://…)"
    if scheme not in NotificationManager():
        return f"{scheme}:// is not a service Apprise knows (see its wiki for the URL forms)"
    # Apprise logs its reasons with the whole URL in them ("Could not load Discord URL:
    # discord://TOKEN"), before any secret is known to the log redaction: keep them unsaid
    apprise_log = logging.getLogger("apprise")
    was_disabled, apprise_log.disabled = apprise_log.disabled, True
    try:
        plugin = apprise.Apprise.instantiate(url)
    finally:
        apprise_log.disabled = was_disabled
    if plugin is None:
        return (
            f"Apprise cannot read this {scheme}:// URL (a token, host or target is missing or "
            "malformed; see its wiki for the form)"
        )
    return None
