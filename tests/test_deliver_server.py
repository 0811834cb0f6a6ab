"""A broken server is not a broken digest: real aiosmtpd relays that fail on purpose at the
greeting, EHLO and HELO, STARTTLS or MAIL FROM (AUTH: test_deliver_email). None of these names a recipient, so every digest
stays due, ``paperwire status`` names the server's answer, and a run after the back-off sends
them."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from click.testing import CliRunner

from paperwire import pipeline
from paperwire.cli import cli

from .conftest import SmtpSink, _Handler, _server_tls_context, free_port
from .test_deliver_email import config_for

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


class Broken(_Handler):
    """The test sink's handler, refusing the step named in ``sink.broken`` until it is fixed."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if self.sink.broken in ("ehlo", "ehlo-only"):
            return ["550 5.7.1 EHLO from this network refused"]
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        if self.sink.broken == "ehlo":
            return "550 5.7.1 HELO from this network refused"
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.sink.broken == "mail":
            return "550 5.7.1 sender digest@paperwire.test not allowed for this account"
        envelope.mail_from = address
        return "250 OK"


class BrokenSMTP(SMTP):
    async def push(self, status):
        if self.event_handler.sink.broken == "greeting" and str(status).startswith("220 "):
            status = "554 5.3.2 paperwire.test: service refused, try another relay"
        await super().push(status)

    async def smtp_QUIT(self, arg):
        if self.event_handler.sink.broken == "quit":
            await asyncio.sleep(600)  # every message taken; goodbye never answered
            return
        await super().smtp_QUIT(arg)

    async def smtp_STARTTLS(self, arg):
        if self.event_handler.sink.broken == "starttls":
            await self.push("454 4.7.0 TLS not available due to local problem")
            return
        await super().smtp_STARTTLS(arg)


class BrokenController(Controller):
    def factory(self):
        return BrokenSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def broken_server() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    sink.broken = None
    controller = BrokenController(
        Broken(sink), hostname=sink.host, port=sink.port, tls_context=_server_tls_context()
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


ANSWERS = {
    "greeting": "greeted with 554 5.3.2 paperwire.test: service refused, try another relay",
    "ehlo": "refused EHLO and HELO: 550 5.7.1 HELO from this network refused",
    "starttls": "refused STARTTLS: 454 4.7.0 TLS not available due to local problem",
    "mail": "refused the sender digest@paperwire.test: 550 5.7.1 sender "
    "digest@paperwire.test not allowed for this account",
}


@pytest.mark.parametrize("step", list(ANSWERS))
def test_a_broken_server_keeps_every_digest_due(step, store, make_config, broken_server, tmp_path):
    url = f"smtp://127.0.0.1:{broken_server.port}?verify=0"
    texts: list[str] = []
    config = config_for(
        lambda text, env: texts.append(text) or make_config(text, env),
        url,
        n=3,
        extra="  retry_attempts: 2\n",
    )
    pipeline.fetch_all(store, config, now=NOW)
    broken_server.broken = step
    report = pipeline.send_due(store, config, now=NOW)
    answer = f"SMTP server 127.0.0.1:{broken_server.port} {ANSWERS[step]}"
    answer += "; tried again after 2026-11-23 12:05 UTC"  # not on every tick: a back-off
    assert [(line.status, line.detail) for line in report.lines] == [("retry", answer)] * 3
    assert {(d["state"], d["error"]) for d in store.deliveries()} == {("pending", answer)}

    (tmp_path / "subscribers.yaml").write_text(texts[0])
    status = CliRunner().invoke(
        cli, ["--db", str(store.path), "status", "--subscriber", "s0"], env=config_env(url)
    )
    assert f"last digest 2026-11-23 (pending: {answer})" in status.output, status.output

    broken_server.broken = None  # the server is fixed: the next run sends them, once each
    again = pipeline.send_due(store, config, now=NOW + dt.timedelta(hours=1))
    assert [line.status for line in again.lines] == ["sent"] * 3
    assert Counter(m["To"] for m in broken_server.messages) == {
        "s0@example.org": 1,
        "s1@example.org": 1,
        "s2@example.org": 1,
    }


def config_env(url: str) -> dict[str, str]:
    return {"PAPERWIRE_SMTP_URL": url, "PAPERWIRE_SECRET": "k-test-signing-key"}


def test_a_server_without_ehlo_is_spoken_to_with_helo(store, make_config, broken_server):
    config = config_for(make_config, f"smtp://127.0.0.1:{broken_server.port}", n=2)
    pipeline.fetch_all(store, config, now=NOW)
    broken_server.broken = "ehlo-only"  # an old server: no ESMTP, plain SMTP works
    assert [line.status for line in pipeline.send_due(store, config, now=NOW).lines] == [
        "sent",
        "sent",
    ]


@pytest.mark.timeout(60)
def test_a_relay_that_never_answers_quit_does_not_hold_the_run(store, make_config, broken_server):
    """Every message was taken, then the relay never answered QUIT: each connection waited
    out the URL's per-command timeout (30 s by default) before the run could end, past
    sender.run_budget, and a daemon's next send waited with it. QUIT, a goodbye, now waits
    email.QUIT_SECONDS."""
    config = config_for(
        make_config, f"{broken_server.url}?verify=0", n=3, extra="  timeout: 5\n  run_budget: 10\n"
    )
    pipeline.fetch_all(store, config, now=NOW)
    broken_server.broken = "quit"
    began = time.monotonic()
    report = pipeline.send_due(store, config, now=NOW)
    took = time.monotonic() - began
    assert [line.status for line in report.lines] == ["sent"] * 3
    assert len(broken_server.messages) == 3
    # the relay's 30 s, or the run's budget of 10 s, at least: a bound below both, not a timing
    assert took < 10, took


class TwoAtATime(SMTP):
    """A relay that takes two connections from one client and greets a third with 421, as
    Microsoft 365 does past its limit ('421 4.3.2 ... concurrent connections')."""

    open: set[int] = set()

    async def push(self, status):
        if str(status).startswith("220 ") and not hasattr(self, "_admitted"):
            self._admitted = len(TwoAtATime.open) < 2
            if not self._admitted:
                await super().push("421 4.3.2 The maximum number of concurrent connections")
                self.transport.close()
                return
            TwoAtATime.open.add(id(self))
        await super().push(status)

    def connection_lost(self, exc):
        TwoAtATime.open.discard(id(self))
        super().connection_lost(exc)


class TwoController(Controller):
    def factory(self):
        return TwoAtATime(self.handler, **self.SMTP_kwargs)


def _twelve_digests_to_a_relay_taking_two(store, make_config, caplog, *, delay: float):
    """One send of 12 digests over 4 connections to a relay that takes 2, ``delay`` seconds a
    message; the report and what the relay received."""
    TwoAtATime.open = set()
    sink = SmtpSink(port=free_port())
    sink.delay = delay
    controller = TwoController(_Handler(sink), hostname=sink.host, port=sink.port)
    controller.start()
    try:
        config = config_for(make_config, sink.url, n=12)
        config = config.model_copy(
            update={"sender": config.sender.model_copy(update={"smtp_connections": 4})}
        )
        pipeline.fetch_all(store, config, now=NOW)
        with caplog.at_level("INFO", logger="paperwire"):
            report = pipeline.send_due(store, config, now=NOW)
    finally:
        controller.stop()
    return report, sink


def test_a_relay_that_takes_fewer_connections_gets_every_message_on_those_it_took(
    store, make_config, caplog
):
    """With smtp_connections 4 and a relay that takes 2, the other two were greeted with 421,
    retried, and then ended the run: 'SMTP server ... greeted with 421' for every digest not
    yet sent, which waited five minutes (found in review: 18 of 20 sent, 2 left). The
    connections the relay took now send them all."""
    # the two connections are busy longer than the others' tries last
    report, sink = _twelve_digests_to_a_relay_taking_two(store, make_config, caplog, delay=0.2)
    assert Counter(line.status for line in report.lines) == {"sent": 12}
    assert len(sink.messages) == 12
    assert "greeted with 421 4.3.2 The maximum number of concurrent connections" in caplog.text
    assert "going on with 2 connections" in caplog.text


def test_a_relay_slower_than_the_tries_of_the_connections_it_refused(store, make_config, caplog):
    """The connections a relay greeted with 421 gave up (4 tries, 0.35 s here; 7 s by default)
    before either connection it took had sent its first message (0.5 s here): none counted as
    taken yet, so the 421 ended the run as a server failure, 2 of 12 sent. A connection the
    relay opened counts from its opening."""
    report, sink = _twelve_digests_to_a_relay_taking_two(store, make_config, caplog, delay=0.5)
    assert Counter(line.status for line in report.lines) == {"sent": 12}
    assert len(sink.messages) == 12
    assert "going on with 2 connections" in caplog.text


class GoesDown(SMTP):
    """A relay that takes ``limit`` messages, then goes down before the next one (a restart, a
    crash): its listener closed and the connection dropped, so every reconnect is refused."""

    async def smtp_MAIL(self, arg):
        sink = self.event_handler.sink
        if len(sink.messages) >= sink.limit:
            sink.down()
            self.transport.close()
            return
        await super().smtp_MAIL(arg)


class DownController(Controller):
    def factory(self):
        return GoesDown(self.handler, **self.SMTP_kwargs)


def test_a_relay_that_goes_down_mid_run_is_a_server_failure(store, make_config, caplog):
    """A relay that goes down mid-run refuses every reconnect. Each connection that had sent
    counted itself among 'the connections it took', so each handed its message back and left:
    the run ended with no server failure, 'going on with 1 connections' its last word, 2
    digests 'took no connection' and the other 7 no line at all (12 digests, 3 sent). The last
    connection's refusal is the server's failure again: every digest has its line."""
    sink = SmtpSink(port=free_port())
    sink.limit = 3
    controller = DownController(_Handler(sink), hostname=sink.host, port=sink.port)
    sink.down = lambda: controller.server.close()
    controller.start()
    try:
        config = config_for(make_config, sink.url, n=12)
        pipeline.fetch_all(store, config, now=NOW)
        with caplog.at_level("INFO", logger="paperwire"):
            report = pipeline.send_due(store, config, now=NOW)
    finally:
        controller.stop()
    statuses = Counter(line.status for line in report.lines)
    assert sorted(line.subscriber_id for line in report.lines) == sorted(f"s{i}" for i in range(12))
    assert statuses == {"sent": len(sink.messages), "retry": 12 - len(sink.messages)}
    assert "going on with 0 connections" not in caplog.text
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    due = f"({12 - len(sink.messages)} e-mails stay due)"  # every one not sent, said so
    assert any("unreachable" in e and e.endswith(due) for e in errors), errors
