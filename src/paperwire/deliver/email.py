"""E-mail: build RFC 5322 messages with the standard library, send them with aiosmtplib.

Without ``PAPERWIRE_SMTP_URL`` messages are written to an outbox folder as ``.eml`` files (with
an ``.html`` preview), so a fresh install can be tried with no mail server.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import contextlib
import datetime as dt
import email.policy
import email.utils
import functools
import logging
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email import headerregistry
from email.message import EmailMessage, MIMEPart
from pathlib import Path

import aiosmtplib
import idna
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from ..config.channels import SmtpSettings
from ..deadline import Budget
from ..errors import DeliveryError
from ..paper import no_encoded_words
from ..redact import redact
from ..render import Rendered, shorten

_UNSAFE_HEADER = re.compile(r"[\x00-\x1f\x7f]+")
# seconds QUIT waits for its answer: a goodbye, after every message was answered; a relay that
# never answers it held each connection the URL's whole per-command timeout (30 s by default)
QUIT_SECONDS = 2.0

log = logging.getLogger("paperwire")


def header_safe(value: str, limit: int = 200) -> str:
    """A single-line header value: control characters (CR, LF, …) folded to spaces, no
    encoded word for the header parser to decode (:func:`~paperwire.paper.no_encoded_words`),
    bounded."""
    value = no_encoded_words(_UNSAFE_HEADER.sub(" ", value).strip())
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


class _VerbatimUrlHeader(headerregistry.UnstructuredHeader, headerregistry.BaseHeader):
    """A header whose value is ``<URL>``: written on one line when it fits RFC 5322's 998.

    The default policy refolds any header past 78 columns, and a URL has no space to fold at,
    so it would become an RFC 2047 encoded-word (``=?utf-8?q?=3Chttps...``) that no mail client
    recognises as a List-Unsubscribe link."""

    def fold(self, *, policy: email.policy.Policy) -> str:
        line = f"{self.name}: {self}"
        if line.isascii() and len(line) <= 998:
            return line + policy.linesep
        return super().fold(policy=policy)


class _HeaderClasses(headerregistry.HeaderRegistry):
    """The standard registry, but it builds each header class once: the stdlib's creates a new
    class for every header it parses (~0.5 ms a digest at 20 headers)."""

    @functools.cache  # noqa: B019 (one registry per process, never freed)
    def __getitem__(self, name: str) -> type:
        return super().__getitem__(name)


def _policy() -> email.policy.EmailPolicy[EmailMessage]:
    registry = _HeaderClasses()
    registry.map_to_type("list-unsubscribe", _VerbatimUrlHeader)
    return email.policy.SMTP.clone(header_factory=registry)


POLICY = _policy()


def _text_part(text: str, subtype: str) -> MIMEPart:
    """A UTF-8 text part in quoted-printable, encoded by binascii (C): 7-bit safe for any relay
    and readable as source. (``set_content`` would use the email package's pure-Python
    encoder, ~1 ms a digest, or base64, a third larger.)"""
    part = MIMEPart(policy=POLICY)
    part["Content-Type"] = f"text/{subtype}; charset=utf-8"
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(text.encode(), istext=True).decode("ascii"))
    return part


def build_message(
    rendered: Rendered,
    *,
    sender: str,
    recipient: str,
    message_id: str,
    list_id: str,
    unsubscribe_url: str,
    date: float | None = None,
) -> EmailMessage:
    """A multipart/alternative message (text first, HTML preferred) with list headers (RFC 2369,
    RFC 8058 one-click unsubscribe)."""
    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = header_safe(rendered.subject)
    msg["From"] = sender
    msg["To"] = recipient
    # in UTC, said as "+0000": formatdate's "-0000" means "the sender's zone is unknown"
    # (RFC 5322 3.3), which some filters count against a message
    moment = dt.datetime.fromtimestamp(time.time() if date is None else date, dt.UTC)
    msg["Date"] = email.utils.format_datetime(moment)
    msg["Message-ID"] = message_id
    msg["List-Id"] = f"Paperwire digest <{list_id}>"
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["MIME-Version"] = "1.0"
    # "=_" never occurs in quoted-printable text, so this boundary needs no search of the parts
    msg.make_alternative(boundary=f"=_{secrets.token_hex(12)}")
    # typeshed wants attach()'s part to be the message's own class; any MIME part will do
    msg.attach(_text_part(rendered.text, "plain"))  # type: ignore[arg-type]
    msg.attach(_text_part(rendered.html, "html"))  # type: ignore[arg-type]
    return msg


def make_message_id(kind: str, subscriber_id: str, period: str, domain: str) -> str:
    """A Message-ID stored with its ledger entry, so a resend after a crash is recognisable.

    Kept short enough never to be folded across lines."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", f"{kind}.{subscriber_id}.{period}")[:40]
    return f"<{safe}.{secrets.token_hex(6)}@{domain[:60]}>"


def bare_address(address: str) -> str:
    """``digest@example.org`` from ``Paperwire <digest@example.org>``."""
    return email.utils.parseaddr(address)[1]


def domain_of(address: str) -> str:
    """The address's domain, in ASCII (IDNA) form: Message-IDs are made of it, and a relay
    without SMTPUTF8 takes only ASCII headers."""
    domain = bare_address(address).rpartition("@")[2] or "localhost"
    return ascii_domain(domain) or domain


def flatten(msg: EmailMessage) -> bytes:
    """The message as sent: CRLF lines, 7-bit bodies; headers in UTF-8 only when an address
    itself is not ASCII (such a message goes out with SMTPUTF8; a display name is encoded)."""
    addresses = [a.addr_spec for h in ("From", "To") if h in msg for a in msg[h].addresses]
    if all(a.isascii() for a in addresses):
        return msg.as_bytes()
    policy = msg.policy if isinstance(msg.policy, email.policy.EmailPolicy) else POLICY
    return msg.as_bytes(policy=policy.clone(utf8=True))


def ascii_domain(domain: str) -> str | None:
    """A domain as DNS and a relay without SMTPUTF8 know it: ``xn--bcher-kva.example`` for
    ``bücher.example`` (IDNA 2008, UTS 46, as feed links' hosts); None if it has no such form."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None


def ascii_address(address: str) -> str | None:
    """The same address in ASCII, its domain in IDNA form (:func:`ascii_domain`); None if its
    local part is not ASCII, which only SMTPUTF8 carries."""
    local, at, domain = address.rpartition("@")
    if not (at and local.isascii()):
        return None
    ascii = ascii_domain(domain)
    return f"{local}@{ascii}" if ascii is not None else None


def ascii_form(msg: EmailMessage) -> bytes | None:
    """The message for a relay without SMTPUTF8, when its addresses are not all ASCII: each
    domain in IDNA form (the same addresses), the headers 7-bit; None if an address's local
    part is not ASCII. Rewrites the message's From and To: flatten it first."""
    headers = {}
    for name in ("From", "To"):
        addresses = []
        for address in msg[name].addresses:
            domain = ascii_domain(address.domain)
            if not address.username.isascii() or domain is None:
                return None
            addresses.append(headerregistry.Address(address.display_name, address.username, domain))
        headers[name] = ", ".join(str(a) for a in addresses)
    for name, value in headers.items():
        msg.replace_header(name, value)
    try:
        return msg.as_bytes()
    except UnicodeError:  # another header not ASCII (a Message-ID made before domain_of's IDNA)
        return None


# -- the outbox --------------------------------------------------------------------------------


def write_outbox(folder: Path, name: str, msg: EmailMessage, html: str) -> Path:
    """Write ``NAME.eml`` (the exact message, as :func:`flatten` makes it for SMTP: an address
    that is not ASCII in UTF-8, never an encoded word inside it) and ``NAME.html`` (a preview)
    atomically."""
    target = folder / f"{name}.eml"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, data in ((target, flatten(msg)), (folder / f"{name}.html", html.encode())):
            tmp = path.with_suffix(path.suffix + ".tmp")
            try:
                tmp.write_bytes(data)
                tmp.replace(path)
            finally:
                tmp.unlink(missing_ok=True)  # a full disk leaves no half-written file
    except OSError as exc:
        raise DeliveryError(
            f"{folder}: cannot write {target.name}: {exc.strerror or exc}; "
            "free some space or fix the folder's permissions: the digest stays due"
        ) from None
    return target


# -- SMTP --------------------------------------------------------------------------------------


@dataclass
class Outgoing:
    """One message to send, flattened (:func:`flatten`), with its envelope; or, with
    ``problem``, one that could not be built (that digest fails, the others go out)."""

    key: int
    message: bytes
    mail_from: str
    recipient: str
    problem: str | None = None
    # the message for a relay without SMTPUTF8 (:func:`ascii_form`), where ``message`` has
    # an international domain in its addresses
    ascii_message: bytes | None = None


@dataclass
class Outcome:
    key: int
    ok: bool
    error: str | None = None
    permanent: bool = False
    maybe_delivered: bool = False  # DATA sent, then no answer within the deadline


class SmtpServerError(DeliveryError):
    """The relay or the account failed (connection, greeting, EHLO, STARTTLS, AUTH, MAIL FROM):
    this says nothing about any recipient, so every digest stays due and the run stops sending.
    Never permanent: the next run, with the server fixed, sends them."""

    def __init__(self, message: str, *, connecting: bool = False):
        super().__init__(message, permanent=False)
        # failed to open a connection (a greeting's 4xx, a refused or dropped connect), with
        # nothing of a session begun: a relay at its limit of connections from one client
        self.connecting = connecting


class _Refused(Exception):
    """The server refused a step of the session itself, before any recipient was named."""

    def __init__(self, step: str, exc: aiosmtplib.SMTPResponseException):
        glue = " " if step == "greeted with" else ": "
        super().__init__(f"{step}{glue}{exc.code} {header_safe(exc.message, 300)}")
        self.code, self.step = exc.code, step


class _NoTlsForLogin(_Refused):
    """A relay that offered no STARTTLS to a URL with a password: refused on our side, as a
    relay's 530 (permanent: the run ends, every digest stays due)."""

    def __init__(self) -> None:
        Exception.__init__(
            self,
            "offered no STARTTLS, so paperwire did not send the password without TLS: use "
            "smtps://, a relay that offers STARTTLS, or add ?insecure_login=1 to the URL if the "
            "line is your own",
        )
        self.code, self.step = 530, "offered no STARTTLS"


class _NoLogin(_Refused):
    """A URL with a user and password, a relay that offers no login (AUTH) at all: aiosmtplib's
    SMTPException read as 'unreachable', which it is not."""

    def __init__(self) -> None:
        Exception.__init__(
            self,
            "offers no login (no AUTH in its EHLO answer), but the URL has a user and "
            "password: remove them from it, or use the relay's port for logins (587 or 465)",
        )
        self.code, self.step = 530, "offers no login"


def _unwrap(exc: BaseException) -> BaseException:
    """aiosmtplib reports a refused sole recipient as a list of one refusal: use that one."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return exc.recipients[0]
    return exc


def _transient(exc: BaseException) -> bool:
    """4xx replies, dropped connections and time-outs are worth retrying; 5xx replies are not."""
    exc = _unwrap(exc)
    if isinstance(exc, _Refused | aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500 or exc.code == -1
    return isinstance(exc, OSError)  # includes disconnects, connect errors and time-outs


def _answered(exc: BaseException, phase: dict[str, bool]) -> bool:
    """Before the message went out, anything; after it, only a reply (a 4xx said the message
    was not taken)."""
    return not phase["data"] or isinstance(
        _unwrap(exc), _Refused | aiosmtplib.SMTPResponseException
    )


class SmtpSender:
    """Sends many messages over a few reused connections, retrying transient failures."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        connections: int = 4,
        attempts: int = 4,
        backoff: float = 1.0,
        deadline: float = 60.0,
        budget: Budget | None = None,
    ):
        self.settings = settings
        self.connections = connections
        self.attempts = attempts
        self.backoff = backoff
        # seconds one message may take in all (connecting, retries, waits): aiosmtplib's own
        # timeout is per command, and a relay answering slowly never trips it; and never past
        # what is left of the run's budget, when it runs out no message is taken
        self.deadline = deadline
        self.budget = budget or Budget()
        # set when the server or the account failed: the run stops, every digest stays due
        self.failure: SmtpServerError | None = None

    @functools.cached_property
    def _tls_context(self) -> ssl.SSLContext:
        # built once per sender: loading the CA store costs ~30 ms per connection otherwise
        context = ssl.create_default_context()
        if not self.settings.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        context = self._tls_context
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.implicit_tls,
            start_tls=False,  # done step by step in _connect, to name the step that fails
            timeout=s.timeout,
            tls_context=context,
        )

    async def _connect(self) -> aiosmtplib.SMTP:
        """Connect (STARTTLS when offered), then log in; a failure leaves no socket open.

        A refusal at any of these steps is the server's or the account's (:class:`_Refused`)."""
        client = self._client()
        step = "greeted with"
        try:
            await client.connect()
            step = "refused EHLO and HELO"
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()  # an old server without ESMTP: plain SMTP still works
            secure = self.settings.implicit_tls
            if not secure and client.supports_extension("starttls"):
                step = "refused STARTTLS"
                await client.starttls()
                await client.ehlo()  # what it offers over TLS (AUTH, often) is said anew
                secure = True
            if self.settings.username and not secure and not self.settings.insecure_login:
                # a relay without STARTTLS, or someone on the way who struck it from the
                # EHLO answer: the password would cross the network as it is
                raise _NoTlsForLogin()
            if self.settings.username and not client.supports_extension("auth"):
                raise _NoLogin()
            if self.settings.username:
                step = "refused the login"
                await client.login(self.settings.username, self.settings.password or "")
        except aiosmtplib.SMTPResponseException as exc:
            _abort(client)
            raise _Refused(step, exc) from None
        except BaseException:
            _abort(client)
            raise
        return client

    async def send_all(
        self,
        items: Iterable[Outgoing],
        on_done: Callable[[Outcome], None] | None = None,
        stop: threading.Event | None = None,
    ) -> list[Outcome]:
        """Send every item; ``on_done`` is called as each finishes (to update the ledger).

        ``items`` is consumed lazily, one message whenever a connection is free, and the next
        one is taken in a worker thread (where it is rendered, or awaited from the rendering
        processes: :mod:`.messages`) while the others wait on the network: memory stays flat
        and rendering overlaps sending."""
        iterator = iter(items)
        take = asyncio.Lock()
        loop = asyncio.get_running_loop()
        outcomes: list[Outcome] = []
        # messages a connection the relay would not open handed back, for those it did open
        handed_back: collections.deque[Outgoing] = collections.deque()
        sending = 0  # connections open and sending

        def finish(outcome: Outcome) -> None:
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)

        async def next_item() -> Outgoing | None:
            async with take:
                if (stop is not None and stop.is_set()) or self.failure is not None:
                    return None
                if self.budget.spent:
                    return None  # what is left stays due for the next run
                if handed_back:
                    return handed_back.popleft()
                item = await loop.run_in_executor(None, next, iterator, None)
                return item if item is not None or not handed_back else handed_back.popleft()

        async def worker() -> None:
            nonlocal sending
            client: aiosmtplib.SMTP | None = None
            counted = False  # this worker's connection is among those sending

            def opened() -> None:
                # the relay took this connection: from now on it is one of those it took,
                # before its first message is through (a slow relay's first message outlasts
                # the tries of the connections it greeted with a 4xx)
                nonlocal counted, sending
                if not counted:
                    counted, sending = True, sending + 1

            try:
                while (item := await next_item()) is not None:
                    if item.problem is not None:
                        finish(Outcome(item.key, False, item.problem, permanent=True))
                        continue
                    try:
                        client = await self._send_within_deadline(client, item, opened)
                    except DeliveryError as exc:
                        # the connections sending but this one's (whose line was lost): none,
                        # and the relay is down, not full
                        others = sending - counted
                        if isinstance(exc, SmtpServerError) and exc.connecting and others:
                            # a relay that takes fewer connections than smtp_connections from
                            # one client (Microsoft 365 takes 3: '421 4.3.2'): the ones it took
                            # send this message and the rest; the run goes on
                            log.info("send: %s; going on with %d connections", exc, others)
                            handed_back.append(item)
                            return
                        if isinstance(exc, SmtpServerError) and self.failure is None:
                            self.failure = exc  # no other message is taken
                        finish(
                            Outcome(item.key, False, str(exc), exc.permanent, exc.maybe_delivered)
                        )
                        if not exc.permanent:
                            await _close(client)
                            client = None
                    except Exception as exc:  # noqa: BLE001 (one message's failure, said in a line)
                        # a value the checks missed (aiosmtplib's ValueError for an address it
                        # will not put in MAIL FROM) escaped as a traceback from every send,
                        # and each daemon tick: this message fails, the others go on
                        log.debug("send: message %s raised", item.key, exc_info=exc)
                        text = " ".join(redact(str(exc)).split())
                        finish(
                            Outcome(
                                item.key,
                                False,
                                f"SMTP: unexpected {type(exc).__name__}: {shorten(text, 200)}",
                                permanent=True,
                            )
                        )
                        await _close(client)  # its state unknown: the next message reconnects
                        client = None
                    else:
                        # accepted: what writing that down raises (a database locked past
                        # every wait) is no failure of this message; it failed it, and its
                        # papers went out again in the next digest (found in review)
                        opened()
                        finish(Outcome(item.key, True))
            finally:
                if counted:
                    sending -= 1
                await _close(client)

        await asyncio.gather(*(worker() for _ in range(self.connections)))
        for item in handed_back:  # handed back as the last connection was done: the next run
            finish(Outcome(item.key, False, f"{self._server} took no connection to send it"))
        return outcomes

    async def _send_within_deadline(
        self,
        client: aiosmtplib.SMTP | None,
        item: Outgoing,
        opened: Callable[[], None] = lambda: None,
    ) -> aiosmtplib.SMTP:
        """:meth:`_send_one` within :attr:`deadline` seconds in all (or what is left of the
        run's budget). A message that went out (after DATA's 354) unanswered is "maybe
        delivered"; one that timed out before (connecting, MAIL, RCPT, DATA) was not: a relay
        too slow to take it is a failure of the server. Either way the run stops sending (the
        relay is too slow for the others too), unless it was the run's budget that ran out."""
        phase = {"data": False}
        deadline, limit = self.budget.deadline(self.deadline, "sender.timeout")
        try:
            async with asyncio.timeout(deadline) as scope:
                return await self._send_one(client, item, phase, opened)
        except TimeoutError:
            if not scope.expired():
                raise
            budget = limit != "sender.timeout"
            if phase["data"]:
                if not budget:
                    self.failure = self.failure or SmtpServerError(
                        f"{self._server} did not answer within {deadline:.3g} s ({limit})"
                    )
                raise DeliveryError(
                    f"{self._server}: no answer for {item.recipient} within {deadline:.3g} s "
                    f"({limit}) after the message was sent; it may have arrived",
                    maybe_delivered=True,
                ) from None
            if budget:  # not the server's fault: it stays due, untried
                raise DeliveryError(
                    f"{self._server}: not sent to {item.recipient}: the run's budget ran out "
                    f"({limit})"
                ) from None
            raise SmtpServerError(
                f"{self._server} could not take a message within {deadline:.3g} s ({limit}); "
                "it was not sent"
            ) from None

    async def _send_one(
        self,
        client: aiosmtplib.SMTP | None,
        item: Outgoing,
        phase: dict[str, bool],
        opened: Callable[[], None],
    ) -> aiosmtplib.SMTP:
        """Send on the worker's connection, reconnecting and backing off on transient errors;
        ``opened`` is called as a connection is opened (greeted, TLS and login done)."""
        connection = client
        try:
            async for attempt in AsyncRetrying(
                # once the message went out, a dropped line is no answer: it may have
                # arrived, and sending it again at once could deliver it twice
                retry=retry_if_exception(lambda exc: _transient(exc) and _answered(exc, phase)),
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(
                    multiplier=self.backoff, min=self.backoff, max=30 * self.backoff
                ),
                reraise=True,
            ):
                with attempt:
                    phase["data"] = False
                    if connection is None or not connection.is_connected:
                        phase["session"] = False
                        connection = await self._connect()
                        opened()
                    phase["session"] = True
                    try:
                        await _transaction(connection, item, phase)
                    except BaseException:
                        _abort(connection)
                        connection = None
                        raise
        except _Refused as exc:
            opening = exc.step == "greeted with" and 400 <= exc.code < 500
            raise SmtpServerError(f"{self._server} {exc}", connecting=opening) from None
        except aiosmtplib.SMTPSenderRefused as exc:
            if exc.code == 552:
                # RFC 1870: a relay announcing SIZE refuses a larger message at MAIL FROM with
                # a 552: this message's size, not the sender; the others go on
                raise DeliveryError(
                    f"SMTP 552 for {item.recipient}: the message ({len(item.message):,} bytes) "
                    f"is larger than the relay takes: {header_safe(exc.message, 300)}",
                    permanent=True,
                ) from None
            raise SmtpServerError(
                f"{self._server} refused the sender {item.mail_from}: {exc.code} "
                f"{header_safe(exc.message, 300)}"
            ) from None
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:
            # RCPT or DATA: this recipient's answer; a 5xx fails this digest only
            refusal = _unwrap(exc)
            if not isinstance(refusal, aiosmtplib.SMTPResponseException):
                raise DeliveryError(f"SMTP refused {item.recipient}: {refusal}") from None
            permanent = refusal.code >= 500
            raise DeliveryError(
                f"SMTP {refusal.code} for {item.recipient}: {header_safe(refusal.message, 300)}",
                permanent=permanent,
            ) from None
        except _SenderNeedsSmtpUtf8:
            # the sender, not this reader: every message would fail alike, so the run ends
            # and every digest stays due, as for a relay refusing the sender (a From fixed in
            # the config then goes at once: relay_fingerprint)
            raise SmtpServerError(
                f"{self._server} cannot take the sender {item.mail_from}: its local part is "
                "not ASCII, which needs SMTPUTF8, and the server does not offer it"
            ) from None
        except _NoSmtpUtf8 as exc:
            raise DeliveryError(
                f"SMTP cannot deliver to {item.recipient}: {exc}, which needs SMTPUTF8, and "
                f"the {self._server} does not offer it",
                permanent=True,
            ) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise DeliveryError(
                f"SMTP cannot deliver to {item.recipient}: {exc}", permanent=True
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            if phase["data"]:
                # as a relay silent after the message (_send_within_deadline): too broken for
                # the others, which stay due
                self.failure = self.failure or SmtpServerError(
                    f"{self._server} dropped the line after a message: {exc}"
                )
                raise DeliveryError(
                    f"{self._server}: the line dropped after the message to {item.recipient} "
                    "was sent; it may have arrived",
                    maybe_delivered=True,
                ) from None
            raise SmtpServerError(
                f"SMTP server {self.settings.host}:{self.settings.port} unreachable: {exc}",
                connecting=not phase.get("session", True),
            ) from None
        assert connection is not None  # the loop ends only after a message was sent on it
        return connection

    @property
    def _server(self) -> str:
        return f"SMTP server {self.settings.host}:{self.settings.port}"


async def _transaction(connection: aiosmtplib.SMTP, item: Outgoing, phase: dict[str, bool]) -> None:
    """MAIL, RCPT and DATA, step by step (what ``sendmail`` does) so the moment the message
    may have arrived is known: ``phase["data"]`` is set as the message itself goes out, after
    the DATA command's 354 (:func:`_noting_the_body`). Before
    it nothing was delivered and a retry is safe; after it, an unanswered message may have
    arrived. A refusal resets the envelope, so the connection serves the next message."""
    options = _mail_options(item)
    message, mail_from, recipient = item.message, item.mail_from, item.recipient
    if options and not connection.supports_extension("smtputf8"):
        # an international domain goes in its IDNA form: the same address, in ASCII
        ascii_from, ascii_to = ascii_address(mail_from), ascii_address(recipient)
        if ascii_to is None:
            raise _NoSmtpUtf8("its local part is not ASCII")
        if ascii_from is None:
            raise _SenderNeedsSmtpUtf8(item.mail_from)
        if item.ascii_message is None:
            raise _NoSmtpUtf8("its headers are not ASCII")
        message, mail_from, recipient, options = item.ascii_message, ascii_from, ascii_to, []
    utf8 = bool(options)
    if connection.supports_extension("size"):
        options.insert(0, f"size={len(message)}")  # flatten() wrote CRLF lines already
    encoding = "utf-8" if utf8 else "ascii"
    try:
        await connection.mail(mail_from, options=options, encoding=encoding)
        await connection.rcpt(recipient, encoding=encoding)
        with _noting_the_body(connection, phase):
            await connection.data(message)
    except aiosmtplib.SMTPResponseException:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await connection.rset()
        raise


@contextlib.contextmanager
def _noting_the_body(connection: aiosmtplib.SMTP, phase: dict[str, bool]) -> Iterator[None]:
    """Set ``phase["data"]`` as the message itself goes out. aiosmtplib's ``data()`` writes the
    DATA command, waits for the 354, then writes the message: a line dropped before the 354
    delivered nothing (a retry is safe), one dropped after it may have delivered it all."""
    protocol = connection.protocol
    if protocol is None:  # data() raises "connection lost": nothing goes out
        yield
        return
    write = protocol.write

    def watched(data: bytes) -> None:
        if data != b"DATA\r\n":
            phase["data"] = True
        write(data)

    protocol.write = watched  # type: ignore[method-assign]
    try:
        yield
    finally:
        del protocol.write  # the class's own again


class _NoSmtpUtf8(aiosmtplib.SMTPNotSupported):
    """A message only SMTPUTF8 carries (an address's local part is not ASCII), to a relay
    that does not offer it: why, in a few words."""


class _SenderNeedsSmtpUtf8(_NoSmtpUtf8):
    """The sender's local part is not ASCII, and the relay does not offer SMTPUTF8."""


def _mail_options(item: Outgoing) -> list[str]:
    # bodies are 7-bit (quoted-printable), so only a non-ASCII address needs an extension
    return [] if (item.mail_from + item.recipient).isascii() else ["SMTPUTF8"]


async def _close(client: aiosmtplib.SMTP | None) -> None:
    """QUIT politely; if the server is gone, drop the connection."""
    if client is not None and client.is_connected:
        transport = client.transport
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.quit(timeout=min(QUIT_SECONDS, client.timeout or QUIT_SECONDS))
        if isinstance(transport, asyncio.Transport):
            transport.abort()  # see _abort: do not leave a TLS shutdown pending
        _abort(client)
    return None


def _abort(client: aiosmtplib.SMTP) -> None:
    # abort(), not close(): a TLS transport's close() waits for a shutdown handshake that a
    # broken connection never completes, leaving the socket open.
    if isinstance(client.transport, asyncio.Transport):
        client.transport.abort()
    client.close()
