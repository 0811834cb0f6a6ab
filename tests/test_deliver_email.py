"""E-mail delivery into a real aiosmtpd server: structure, safety, failures, exactly once."""

from __future__ import annotations

import datetime as dt
import logging
import re
from email.message import EmailMessage

import pytest

from paperwire import pipeline
from paperwire.config.channels import SmtpSettings
from paperwire.deliver import messages
from paperwire.deliver.email import header_safe
from paperwire.errors import ConfigError
from paperwire.links import Signer
from paperwire.paper import Paper
from paperwire.store import Store

from .conftest import FIXTURES

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def config_for(make_config, smtp_url: str | None, n: int = 3, extra: str = ""):
    subs = "".join(
        f"  - id: s{i}\n    email: s{i}@example.org\n"  # no interests: every paper is a pick
        f"    digest_size: 3\n    digest_days: daily\n"
        for i in range(n)
    )
    env = {"PAPERWIRE_SECRET": "k-test-signing-key"}
    if smtp_url:
        env["PAPERWIRE_SMTP_URL"] = smtp_url
    return make_config(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\n    name: cs\nsubscribers:\n{subs}"
        f"sender:\n  from_address: 'Paperwire <digest@paperwire.test>'\n  retry_backoff: 0.05\n"
        f"  smtp_connections: 2\n{extra}",
        env=env,
    )


def test_smtp_url_parsing():
    s = SmtpSettings.from_url("smtps://me%40corp:p%3Ass@mail.example.org")
    assert (s.host, s.port, s.username, s.password, s.implicit_tls) == (
        "mail.example.org",
        465,
        "me@corp",
        "p:ss",
        True,
    )
    assert "p:ss" not in repr(s)
    assert SmtpSettings.from_url("smtp://relay").port == 587
    # no timeout per command unless the URL gives one: sender.timeout bounds each message (a
    # per-command 30 s cut off a relay answering DATA at 35 s within the 60 s deadline)
    assert SmtpSettings.from_url("smtp://relay").timeout is None
    assert SmtpSettings.from_url("smtp://relay?timeout=45").timeout == 45.0
    # the on/off options take the spellings verify took (insecure_login=yes was said to be on
    # the wrong scheme, on the right one)
    s = SmtpSettings.from_url("smtp://u:p@relay:465?starttls=true&insecure_login=yes&verify=no")
    assert (s.port, s.implicit_tls, s.insecure_login, s.verify_tls) == (465, False, True, False)
    off = SmtpSettings.from_url("smtp://relay?insecure_login=0&verify=1")
    assert (off.insecure_login, off.verify_tls) == (False, True)
    with pytest.raises(ConfigError, match="expected smtp://"):
        SmtpSettings.from_url("http://relay")


def test_header_safe_folds_control_characters():
    assert header_safe("A\r\nBcc: evil@example.org") == "A Bcc: evil@example.org"
    assert len(header_safe("x" * 500)) == 200


def test_feed_text_cannot_inject_html_or_headers(store, make_config, smtp_server):
    config = config_for(make_config, smtp_server.url, n=1)
    store.add_papers(
        [
            Paper(
                "2501.00001",
                "Evil <script>alert(1)</script>\r\nBcc: victim@example.org language models retrieval",
                abstract="<img src=x onerror=alert(2)> retrieval language models",
                authors=["<b>Mallory</b>"],
                url="https://arxiv.org/abs/2501.00001",
                source="t",
            )
        ],
        now=NOW,
    )
    pipeline.send_due(store, config, now=NOW)
    [msg] = smtp_server.messages
    assert msg["Bcc"] is None
    assert smtp_server.envelopes[0][1] == ["s0@example.org"]
    assert "\n" not in msg["Subject"] and "Evil <script>" in msg["Subject"]
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html
    assert "<b>Mallory</b>" not in html


def _encoded_word(text: str, encoding: str = "b") -> str:
    import base64
    import quopri

    if encoding == "b":
        return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="
    return f"=?utf-8?q?{quopri.encodestring(text.encode(), header=True).decode()}?="


@pytest.mark.parametrize(
    "hidden",
    [
        _encoded_word("\r\nReply-To: attacker@evil.example\r\nX-Injected: yes"),
        # the whole message replaced: a blank line, then the attacker's body
        _encoded_word("\r\nContent-Type: text/html\r\n\r\n<h1>Log in at evil.example</h1><!--"),
        _encoded_word("\u202etxt.exe"),  # a right-to-left override, dropped from the title
        _encoded_word("\x1b[2J", "q"),  # a terminal escape
    ],
    ids=["headers", "body", "bidi", "escape"],
)
def test_an_encoded_word_in_a_title_is_never_decoded_into_the_subject(
    store, make_config, smtp_server, hidden
):
    # a title of printable ASCII that the header parser would decode: on Python 3.11.7 the
    # CR/LF inside was written out raw (CVE-2024-6923), new headers and a new body; on any
    # Python the bidi override and the escape came back (found in review)
    config = config_for(make_config, smtp_server.url, n=1)
    title = f"Attention sinks {hidden} language models retrieval"
    store.add_papers(
        [Paper("2501.00003", title, abstract="retrieval", url="u", source="t")], now=NOW
    )
    pipeline.send_due(store, config, now=NOW)
    [msg] = smtp_server.messages
    head = msg.as_bytes().split(b"\n\n")[0].decode()
    assert msg["Reply-To"] is None and msg["X-Injected"] is None
    assert "evil.example" not in head.replace(msg["Subject"], "")
    assert msg.get_content_type() == "multipart/alternative"
    subject = msg["Subject"]
    assert subject.startswith("Paperwire 2026-11-23: Attention sinks")
    assert not any(c in subject for c in "\r\n\x1b\u202e")
    assert "= ?utf-8?" in subject  # the title's text as written, not decoded
    assert header_safe(f"x {hidden}").count("=?") == 0


def test_long_non_ascii_subject_is_encoded_and_folded(store, make_config, smtp_server):
    config = config_for(make_config, smtp_server.url, n=1)
    title = "Über-efficient retrieval language models für lange Kontexte — 量子化 " * 4
    store.add_papers(
        [Paper("2501.00002", title, abstract="retrieval", url="u", source="t")], now=NOW
    )
    pipeline.send_due(store, config, now=NOW)
    [msg] = smtp_server.messages
    raw = msg.as_bytes()
    assert all(len(line) <= 998 for line in raw.splitlines())
    assert b"=?utf-8?" in raw.split(b"\n\n")[0]  # RFC 2047 encoded words
    assert msg["Subject"].startswith("Paperwire 2026-11-23: Über-efficient")
    assert len(msg["Subject"]) <= 150


def test_many_messages_share_a_few_connections(store, make_config, smtp_server):
    config = config_for(make_config, smtp_server.url, n=8)
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW)
    assert report.count("sent") == 8
    assert len(smtp_server.messages) == 8
    assert len(set(smtp_server.peers)) == 2  # smtp_connections: 2, several messages on each


def test_a_4xx_and_a_line_dropped_before_data_are_retried(store, make_config, smtp_server):
    config = config_for(make_config, smtp_server.url, n=3)
    pipeline.fetch_all(store, config, now=NOW)
    smtp_server.data_replies = ["451 4.3.0 try again later"]
    smtp_server.drop_rcpt_next = 1
    report = pipeline.send_due(store, config, now=NOW)
    assert report.count("sent") == 3
    assert sorted(smtp_server.by_recipient()) == [
        "s0@example.org",
        "s1@example.org",
        "s2@example.org",
    ]
    assert all(len(v) == 1 for v in smtp_server.by_recipient().values())


def test_a_line_dropped_after_the_message_is_maybe_delivered_not_sent_again_at_once(
    store, make_config, smtp_server
):
    """A relay that took the whole message and dropped the line before answering got it four
    times in one run (a dropped line was retried like any other) and 24 times over six runs.
    The message may have arrived: it is "maybe delivered", sent again only after the back-off,
    and the run stops sending to that relay (the others stay due)."""
    config = config_for(make_config, smtp_server.url, n=1)
    pipeline.fetch_all(store, config, now=NOW)
    smtp_server.drop_next = 10
    [line] = pipeline.send_due(store, config, now=NOW).lines
    assert len(smtp_server.messages) == 1
    assert line.status == "retry"
    assert line.detail.startswith("maybe delivered: ")
    assert "it may have arrived" in line.detail
    [row] = store.deliveries()
    assert (row["state"], row["maybe_sent"], row["attempts"]) == ("pending", 1, 1)
    # not on the next tick: after the back-off, once
    assert pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=1)).lines[0].status == (
        "waiting"
    )
    assert len(smtp_server.messages) == 1
    pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=6))
    assert len(smtp_server.messages) == 2


class _HangsUpAtData:
    """A relay that answers 250 to everything and closes the line at the DATA command, before
    its 354: no message can have reached it."""

    def __init__(self):
        import socket
        import threading

        self.data_commands = 0
        self.bodies = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 relay.test ESMTP\r\n")
            for line in lines:
                if line.upper().startswith(b"DATA"):
                    self.data_commands += 1
                    return  # hang up before the 354
                if line.upper().startswith(b"QUIT"):
                    conn.sendall(b"221 bye\r\n")
                    return
                conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self._listener.close()


def test_a_line_dropped_at_the_data_command_is_not_maybe_delivered(store, make_config):
    """The first fix for a line dropped after the message counted one dropped at the DATA
    command too (before the 354, nothing sent): "maybe delivered" three times, then failed for
    good, a digest lost that never reached the relay. It stays an outage, tried again."""
    relay = _HangsUpAtData()
    try:
        config = config_for(make_config, f"smtp://127.0.0.1:{relay.port}", n=1)
        pipeline.fetch_all(store, config, now=NOW)
        [line] = pipeline.send_due(store, config, now=NOW).lines
    finally:
        relay.close()
    assert relay.data_commands >= 1
    assert line.status == "retry" and "maybe" not in line.detail, line.detail
    [row] = store.deliveries()
    assert (row["state"], row["maybe_sent"]) == ("pending", 0)


def test_a_5xx_for_one_recipient_fails_only_that_digest(store, make_config, smtp_server):
    config = config_for(make_config, smtp_server.url, n=3)
    pipeline.fetch_all(store, config, now=NOW)
    smtp_server.refuse["s1@example.org"] = "550 5.1.1 mailbox unavailable"
    report = pipeline.send_due(store, config, now=NOW)
    status = {line.subscriber_id: (line.status, line.detail) for line in report.lines}
    assert status["s0"][0] == status["s2"][0] == "sent"
    assert status["s1"] == ("failed", "SMTP 550 for s1@example.org: 5.1.1 mailbox unavailable")
    failed = store.last_delivery("s1")
    assert (failed["state"], failed["error"]) == (
        "failed",
        "SMTP 550 for s1@example.org: 5.1.1 mailbox unavailable",
    )
    # a failed digest does not swallow its papers: they are candidates again
    assert store.excluded_ids(["s0", "s1"]) == {
        "s0": {p["paper_id"] for p in store.delivery_papers(store.last_delivery("s0")["id"])},
        "s1": set(),
    }


def test_an_smtp_outage_keeps_digests_due_until_the_next_run(store, make_config, smtp_server):
    from .conftest import free_port

    down = config_for(
        make_config, f"smtp://127.0.0.1:{free_port()}", n=2, extra="  retry_attempts: 2\n"
    )
    pipeline.fetch_all(store, down, now=NOW)
    report = pipeline.send_due(store, down, now=NOW)
    assert [line.status for line in report.lines] == ["retry", "retry"]
    assert "unreachable" in report.lines[0].detail
    assert {d["state"] for d in store.deliveries()} == {"pending"}
    up = config_for(make_config, smtp_server.url, n=2)
    later = NOW + dt.timedelta(hours=1)
    again = pipeline.send_due(store, up, now=later)
    assert [line.status for line in again.lines] == ["sent", "sent"]
    assert len(smtp_server.messages) == 2
    ids = {m["Message-ID"] for m in smtp_server.messages}
    assert ids == {d["message_id"] for d in store.deliveries()}  # the ledger's Message-IDs
    assert pipeline.send_due(store, up, now=later).count("sent") == 0


def test_starttls_and_auth_from_the_url(store, make_config, tls_smtp_server):
    url = f"smtp://user:secret-pass@127.0.0.1:{tls_smtp_server.port}?verify=0"
    config = config_for(make_config, url, n=1)
    pipeline.fetch_all(store, config, now=NOW)
    assert pipeline.send_due(store, config, now=NOW).count("sent") == 1
    assert len(tls_smtp_server.messages) == 1
    wrong = config_for(make_config, url.replace("secret-pass", "wrong"), n=2)
    report = pipeline.send_due(store, wrong, now=NOW)
    # a refused login says nothing about the reader: the digest stays due, with the answer
    port = tls_smtp_server.port
    assert [(line.subscriber_id, line.status, line.detail) for line in report.lines][1:] == [
        (
            "s1",
            "retry",
            f"SMTP server 127.0.0.1:{port} refused the login: 535 5.7.8 Authentication "
            "credentials invalid; tried again after 2026-11-23 12:05 UTC",
        )
    ]
    assert store.last_delivery("s1")["state"] == "pending"
    fixed, later = config_for(make_config, url, n=2), NOW + dt.timedelta(minutes=5)
    assert pipeline.send_due(store, fixed, now=later).count("sent") == 1
    assert len(tls_smtp_server.messages) == 2


def test_a_password_never_crosses_a_line_without_tls(store, make_config):
    """A relay that offers no STARTTLS (or someone on the way who struck it from the EHLO
    answer) was sent the password as it is, and the digest counted as sent (found in review).
    Now the login is not sent: the run ends, the digest stays due and the reason says what to
    do; ``?insecure_login=1`` says the line is the operator's own."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from .conftest import SmtpSink, _Handler, free_port

    seen: list[bytes] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append(auth_data.password)
        return AuthResult(success=auth_data.password == b"secret-pass", handled=False)

    sink = SmtpSink(port=free_port())
    controller = Controller(_Handler(sink), hostname=sink.host, port=sink.port,
                            authenticator=authenticator, auth_require_tls=False)  # fmt: skip
    controller.start()
    try:
        url = f"smtp://user:secret-pass@127.0.0.1:{sink.port}"
        config = config_for(make_config, url, n=1)
        pipeline.fetch_all(store, config, now=NOW)
        report = pipeline.send_due(store, config, now=NOW)
        [line] = report.lines
        assert (line.status, line.detail) == (
            "retry",
            f"SMTP server 127.0.0.1:{sink.port} offered no STARTTLS, so paperwire did not send "
            "the password without TLS: use smtps://, a relay that offers STARTTLS, or add "
            "?insecure_login=1 to the URL if the line is your own; tried again after "
            "2026-11-23 12:05 UTC",
        )
        assert seen == [] and sink.messages == []
        assert store.last_delivery("s0")["state"] == "pending"
        # what /healthz shows a monitor: nothing sent, nothing failed, one left to retry
        assert store.last_event("send")["detail"] == {
            "sent": 0,
            "failed": 0,
            "retry": 1,
            "waiting": 0,
        }
        # the same URL waits out the back-off; the operator's fix goes at once, not after it
        # (it said "waiting ... tried again after 12:05" with the old error; upgrade review)
        soon = NOW + dt.timedelta(minutes=1)
        assert [line.status for line in pipeline.send_due(store, config, now=soon).lines] == [
            "waiting"
        ]
        insecure = config_for(make_config, url + "?insecure_login=1", n=1)
        assert pipeline.send_due(store, insecure, now=soon).count("sent") == 1
        assert seen == [b"secret-pass"] and len(sink.messages) == 1
    finally:
        controller.stop()


def test_message_structure(store, make_config, smtp_server):
    config = config_for(make_config, smtp_server.url, n=1)
    pipeline.fetch_all(store, config, now=NOW)
    pipeline.send_due(store, config, now=NOW)
    msg: EmailMessage = smtp_server.messages[0]
    for header in ("Date", "Message-ID", "From", "To", "List-Id", "List-Unsubscribe"):
        assert msg[header], header
    assert msg["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/unsubscribe/")
    # the run's time in UTC, said as such: "-0000" would mean "zone unknown" (RFC 5322 3.3)
    assert msg["Date"] == "Mon, 23 Nov 2026 12:00:00 +0000"
    html = msg.get_body(("html",)).get_content()
    assert 'style="' in html  # CSS inlined for clients that drop <style>
    assert "@media" in html  # the phone layout stays in a <style> block
    text = msg.get_body(("plain",)).get_content()
    assert text.count("More like this: http://127.0.0.1:8000/v/") == 3


def test_list_unsubscribe_is_a_literal_url_and_the_body_is_7bit(store, make_config, smtp_server):
    # A URL has no space to fold at: refolded at 78 columns it became an RFC 2047 encoded-word
    # (=?utf-8?q?=3Chttps...), which no mail client offers as an unsubscribe button.
    base = "https://paperwire-digests.department-of-computer-science.example.org:8443"
    config = config_for(make_config, smtp_server.url, n=1, extra=f"base_url: {base}\n")
    pipeline.fetch_all(store, config, now=NOW)
    pipeline.send_due(store, config, now=NOW)
    [raw] = smtp_server.raw
    head, _, body = raw.partition(b"\r\n\r\n")
    [line] = [h for h in head.split(b"\r\n") if h.startswith(b"List-Unsubscribe:")]
    assert line.startswith(f"List-Unsubscribe: <{base}/unsubscribe/".encode())
    assert line.endswith(b">") and b"=?" not in line
    assert max(body) < 128  # quoted-printable: safe through any relay, no 8BITMIME needed
    msg = smtp_server.messages[0]
    parts = list(msg.iter_parts())
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["quoted-printable"] * 2
    text = msg.get_body(("plain",)).get_content()
    assert text.count(f"More like this: {base}/v/") == 3  # links survive the soft line breaks
    assert "👍 More like this" in msg.get_body(("html",)).get_content()


def test_a_non_ascii_sender_name_is_encoded_and_the_message_stays_7bit(
    store, make_config, smtp_server
):
    config = config_for(make_config, smtp_server.url, n=1)
    config = config.model_copy(
        update={
            "sender": config.sender.model_copy(update={"from_address": "Pâperwire <d@pw.test>"})
        }
    )
    pipeline.fetch_all(store, config, now=NOW)
    assert pipeline.send_due(store, config, now=NOW).count("sent") == 1
    [raw] = smtp_server.raw
    assert max(raw) < 128 and b"From: =?utf-8?q?P=C3=A2perwire?= <d@pw.test>" in raw
    assert smtp_server.envelopes[0][0] == "d@pw.test"
    assert smtp_server.messages[0]["From"] == "Pâperwire <d@pw.test>"


def test_an_international_domain_goes_as_idna_to_a_relay_without_smtputf8(
    store, make_config, ascii_smtp_server
):
    """A reader at ada@bücher.example (or xn--bcher-kva.example, which the config reads as
    bücher.example) failed for good on a relay without SMTPUTF8, as many small relays are:
    'SMTPUTF8 is not supported by this server', and a sender at such a domain failed every
    reader. The domain goes as its IDNA form (the same address), in the envelope and the
    headers, the message 7-bit; a local part that is not ASCII, which only SMTPUTF8 carries,
    fails that reader alone, saying why; the others are sent."""
    text = (
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\n    name: cs\nsubscribers:\n"
        + "".join(
            f"  - id: {who}\n    email: {address}\n    digest_size: 3\n"
            for who, address in (
                ("ada", "ada@bücher.example"),
                ("bea", "bea@xn--bcher-kva.example"),
                ("cyd", "jösé@example.org"),
                ("dan", "dan@example.org"),
            )
        )
        + "sender:\n  from_address: 'Pâperwire <digest@bücher.example>'\n"
    )
    config = make_config(
        text,
        env={"PAPERWIRE_SECRET": "k-test-signing-key", "PAPERWIRE_SMTP_URL": ascii_smtp_server.url},
    )
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW)
    lines = {line.subscriber_id: (line.status, line.detail) for line in report.lines}
    assert [lines[who][0] for who in ("ada", "bea", "dan")] == ["sent"] * 3, lines
    assert lines["cyd"] == (
        "failed",
        "SMTP cannot deliver to jösé@example.org: its local part is not ASCII, which needs "
        "SMTPUTF8, and the SMTP server 127.0.0.1:"
        f"{ascii_smtp_server.port} does not offer it",
    )
    assert sorted(rcpts[0] for _, rcpts in ascii_smtp_server.envelopes) == [
        "ada@xn--bcher-kva.example",
        "bea@xn--bcher-kva.example",
        "dan@example.org",
    ]
    assert {sender for sender, _ in ascii_smtp_server.envelopes} == {"digest@xn--bcher-kva.example"}
    assert all(max(raw) < 128 for raw in ascii_smtp_server.raw)
    to = sorted(str(m["To"]) for m in ascii_smtp_server.messages)
    assert to == ["ada@xn--bcher-kva.example", "bea@xn--bcher-kva.example", "dan@example.org"]
    assert {str(m["From"]) for m in ascii_smtp_server.messages} == {
        "Pâperwire <digest@xn--bcher-kva.example>"
    }


def test_a_sender_only_smtputf8_carries_leaves_every_digest_due_and_a_fixed_one_goes_at_once(
    store, make_config, ascii_smtp_server, caplog
):
    """A From whose local part is not ASCII, to a relay without SMTPUTF8, failed every
    reader's digest for good, one by one; fixed, the day's digests were "already handled"
    (found in review). It is the relay refusing the sender: the run ends, the digests stay
    due, and a corrected From sends them on the next run, without the back-off."""
    text = (
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\n    name: cs\nsubscribers:\n"
        "  - id: dan\n    email: dan@example.org\n    digest_size: 3\n"
        "  - id: eve\n    email: eve@example.org\n    digest_size: 3\n"
        "sender:\n  from_address: '{sender}'\n"
    )
    env = {"PAPERWIRE_SECRET": "k-test-signing-key", "PAPERWIRE_SMTP_URL": ascii_smtp_server.url}
    config = make_config(text.replace("{sender}", "Lab <pápers@lab.example.org>"), env=env)
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW)
    assert report.count("failed") == 0 and report.count("sent") == 0
    assert {line.status for line in report.lines} == {"retry"}, report.lines
    assert ascii_smtp_server.envelopes == []
    # the log counts every one still due ("0 more digests stay due" read as none)
    assert any(r.getMessage().endswith("(2 e-mails stay due)") for r in caplog.records)
    fixed = make_config(text.replace("{sender}", "Lab <papers@lab.example.org>"), env=env)
    again = pipeline.send_due(store, fixed, now=NOW + dt.timedelta(seconds=30))
    assert again.count("sent") == 2, again.lines
    assert {sender for sender, _ in ascii_smtp_server.envelopes} == {"papers@lab.example.org"}


def test_an_international_address_in_the_outbox_is_written_as_it_is_sent(
    store, make_config, tmp_path
):
    """Without SMTP, the .eml of a reader at ada@bücher.example said
    'To: ada@=?utf-8?q?b=C3=BCcher?=.example' (an encoded word inside an address, which
    RFC 2047 forbids: a mail client reads another address, or none) and jösé@example.org's
    '=?utf-8?b?asO2c8Op?=@example.org'. The .eml is now the message as SMTP sends it: those
    headers in UTF-8 (RFC 6532), the others as before."""
    text = (
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\n    name: cs\nsubscribers:\n"
        "  - id: ada\n    email: ada@bücher.example\n    digest_size: 3\n"
        "  - id: cyd\n    email: jösé@example.org\n    digest_size: 3\n"
        "  - id: dan\n    email: dan@example.org\n    digest_size: 3\n"
    )
    config = make_config(text, env={"PAPERWIRE_SECRET": "k-test-signing-key"})
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    assert {line.status for line in report.lines} == {"sent"}
    to = {}
    for eml in (tmp_path / "outbox").glob("*.eml"):
        [line] = [h for h in eml.read_bytes().split(b"\r\n") if h.startswith(b"To: ")]
        to[eml.name.split("-")[3]] = line.decode("utf-8")
    assert to == {
        "ada": "To: ada@bücher.example",
        "cyd": "To: jösé@example.org",
        "dan": "To: dan@example.org",
    }


def test_a_digest_over_the_relay_s_size_limit_fails_alone(store, make_config, smtp_relay):
    """A relay announcing SIZE refuses a larger message at MAIL FROM (552, RFC 1870): that
    was read as the relay refusing the sender, which stops the run, so one reader's long
    digest kept every other reader's digest due, and on every run (field: aiosmtpd with
    data_size_limit, a 40-paper digest first: 'refused the sender ...: 552 Error: message
    size exceeds fixed maximum message size' for all three, 2 small ones that fit). Now that
    digest fails for good, saying its size and the relay's answer; the others are sent."""
    relay = smtp_relay(data_size_limit=20_000)
    subs = "".join(
        f"  - id: {who}\n    email: {who}@example.org\n    digest_size: {size}\n"
        for who, size in (("big", 15), ("s1", 3), ("s2", 3))
    )
    config = make_config(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\n    name: cs\nsubscribers:\n{subs}"
        "sender:\n  from_address: 'Paperwire <digest@paperwire.test>'\n  retry_backoff: 0.05\n"
        "  smtp_connections: 1\n",
        env={"PAPERWIRE_SECRET": "k-test-signing-key", "PAPERWIRE_SMTP_URL": relay.url},
    )
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW)
    lines = {line.subscriber_id: (line.status, line.detail) for line in report.lines}
    assert (lines["s1"][0], lines["s2"][0]) == ("sent", "sent"), lines
    status, detail = lines["big"]
    assert status == "failed"
    assert re.fullmatch(
        r"SMTP 552 for big@example\.org: the message \(\d\d,\d{3} bytes\) is larger than "
        r"the relay takes: Error: message size exceeds fixed maximum message size",
        detail,
    ), detail
    assert sorted(rcpts[0] for _, rcpts in relay.envelopes) == [
        "s1@example.org",
        "s2@example.org",
    ]


def test_a_large_run_renders_in_worker_processes(store, make_config, smtp_server, caplog):
    # the real spawn pool, its threshold lowered so that nine digests (in tasks of two) use it
    caplog.set_level(logging.INFO, logger="paperwire")
    config = config_for(make_config, smtp_server.url, n=9, extra="  render_processes: 2\n")
    pipeline.fetch_all(store, config, now=NOW)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(messages, "POOL_MIN_MESSAGES", 4)
        mp.setattr(messages, "BATCH", 2)
        report = pipeline.send_due(store, config, now=NOW)
    assert "rendering 9 e-mails in 2 processes" in caplog.messages
    assert report.count("sent") == 9
    signer = Signer("k-test-signing-key")
    received = smtp_server.by_recipient()
    assert sorted(received) == [f"s{i}@example.org" for i in range(9)]
    for address, [msg] in received.items():
        sub = address.split("@")[0]
        assert msg["To"] == address and msg["Subject"].startswith("Paperwire 2026-11-23: ")
        token = msg["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
        assert signer.read_subscriber("unsubscribe", token) == sub
        text = msg.get_body(("plain",)).get_content()
        votes = [signer.read_vote(t) for t in re.findall(r"/v/(\S+)", text)]
        assert len(votes) == 6 and {v.subscriber_id for v in votes} == {sub}
    assert pipeline.send_due(store, config, now=NOW).count("sent") == 0  # ledger: all sent


def test_status_shows_last_digest_due_and_failures(store, make_config, smtp_server, tmp_path):
    from click.testing import CliRunner

    from paperwire.cli import cli

    config = config_for(make_config, smtp_server.url, n=2)
    pipeline.fetch_all(store, config, now=NOW)
    smtp_server.refuse["s1@example.org"] = "550 5.1.1 no such user"
    pipeline.send_due(store, config, now=NOW)
    (tmp_path / "subscribers.yaml").write_text(
        "feeds: []\nsubscribers:\n"
        "  - id: s0\n    email: s0@example.org\n    digest_days: daily\n"
        "  - id: s1\n    email: s1@example.org\n    digest_days: daily\n"
    )
    result = CliRunner().invoke(cli, ["--db", str(store.path), "status"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"60 papers stored in {store.path}"
    assert lines[1].startswith("s0 · last digest 2026-11-23 (sent) · ")
    assert lines[2] == "  email: digest 2026-11-23 sent 2026-11-23 12:00 UTC"
    assert lines[3].startswith(
        "s1 · last digest 2026-11-23 (failed: SMTP 550 for s1@example.org: 5.1.1 no such user) · "
    )
    assert lines[4] == (
        "  email: digest 2026-11-23 failed: SMTP 550 for s1@example.org: 5.1.1 no such user"
    )


def test_implicit_tls_with_smtps(store, make_config, implicit_tls_smtp_server):
    url = f"smtps://127.0.0.1:{implicit_tls_smtp_server.port}?verify=0"
    config = config_for(make_config, url, n=2)
    pipeline.fetch_all(store, config, now=NOW)
    assert pipeline.send_due(store, config, now=NOW).count("sent") == 2
    assert sorted(implicit_tls_smtp_server.by_recipient()) == ["s0@example.org", "s1@example.org"]


def test_a_digest_the_relay_took_while_the_database_was_locked_is_recorded_sent(
    store, make_config, smtp_server, monkeypatch
):
    """Another process held the database past the busy timeout while a message was in DATA:
    writing down its acceptance raised StoreBusy, the message was failed ("SMTP: unexpected
    StoreBusy") and its papers went out again in the next digest (found in review). The write
    is tried again while the run's claim lasts, and the digest is sent once."""
    import sqlite3
    import threading
    import time

    from paperwire import store as store_module

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.3)  # each write's wait, shortened
    config = config_for(make_config, smtp_server.url, n=1)
    pipeline.fetch_all(store, config, now=NOW)
    held = threading.Event()

    monkeypatch.setattr(store_module, "LEASE", dt.timedelta(seconds=20))  # tries go on so long

    def hold_the_database() -> None:  # another process's long write, begun as DATA comes
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(1.5)  # five of the sender's waits
        other.execute("COMMIT")
        other.close()

    def on_data() -> None:
        threading.Thread(target=hold_the_database).start()
        held.wait(5)

    smtp_server.on_data = on_data
    smtp_server.delay = 0.2  # the lock is held before the relay answers
    with Store(store.path) as impatient:  # opened with the short wait
        report = pipeline.send_due(impatient, config, now=NOW)
    assert held.is_set()
    assert [(line.status, line.detail) for line in report.lines] == [("sent", "3 papers by e-mail")]
    assert len(smtp_server.messages) == 1
    state = store.db.execute("select state, error from deliveries").fetchall()
    assert state == [("sent", None)]
    again = pipeline.send_due(store, config, now=NOW + dt.timedelta(days=1))
    assert len(smtp_server.messages) == 1, "the papers went out again"
    assert [line.status for line in again.lines] == ["nothing-new"]


def test_a_locked_database_holds_no_other_message_past_its_deadline(
    store, make_config, smtp_server, monkeypatch
):
    """Writing down one accepted message waited out the lock on the sending loop itself: the
    other connection's answer, in already, was read only after its deadline, the message was
    "maybe delivered" and went again in the next run (found in review). An accepted message
    whose write meets a lock is written down once the sending is over."""
    import sqlite3
    import threading
    import time

    from paperwire import store as store_module

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.3)
    config = config_for(make_config, smtp_server.url, n=2, extra="  timeout: 2\n")
    pipeline.fetch_all(store, config, now=NOW)
    held = threading.Event()

    def hold_the_database() -> None:
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(3.5)  # past the other message's 2 s deadline
        other.execute("COMMIT")
        other.close()

    def on_data() -> None:
        if not held.is_set():  # the first message's DATA: the lock comes as it is answered
            threading.Thread(target=hold_the_database).start()
            held.wait(5)

    smtp_server.on_data = on_data
    smtp_server.delay = 0.3
    with Store(store.path) as impatient:
        report = pipeline.send_due(impatient, config, now=NOW)
    assert sorted(line.status for line in report.lines) == ["sent", "sent"], report.lines
    assert len(smtp_server.messages) == 2
    again = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=30))
    assert len(smtp_server.messages) == 2, "a message went twice"
    assert all(line.status != "sent" for line in again.lines)


# -- issue 26: a relay that answers slowly --------------------------------------------------


def test_a_slow_relay_ends_at_the_deadline_and_the_message_is_maybe_delivered(
    store, make_config, smtp_server
):
    """aiosmtplib's timeout is per command (30 s by default): a relay answering DATA after 3 s
    held the run that long per message. With sender.timeout 1 the message ends at 1 s,
    "maybe delivered" (sent again only after a back-off), and the run stops: the relay is too
    slow for the others as well, which stay due (untried, after the same back-off)."""
    import time

    smtp_server.delay = 3
    config = config_for(make_config, smtp_server.url, n=3, extra="  timeout: 1\n")
    pipeline.fetch_all(store, config, now=NOW)
    began = time.monotonic()
    report = pipeline.send_due(store, config, now=NOW)
    took = time.monotonic() - began
    # at the relay's pace the three messages take 9 s at least; at the deadline, 1 s plus
    # rendering (over 2 s on a loaded two-core machine): a bound between the two, not a timing
    assert took < 2 * smtp_server.delay, took
    port = smtp_server.port
    assert sorted((line.status, line.detail) for line in report.lines) == [
        (
            "retry",
            f"SMTP server 127.0.0.1:{port} did not answer within 1 s (sender.timeout); "
            "tried again after 2026-11-23 12:05 UTC",
        ),
        *(
            (
                "retry",
                f"maybe delivered: SMTP server 127.0.0.1:{port}: no answer for s{i}@example.org "
                "within 1 s (sender.timeout) after the message was sent; it may have arrived; "
                "sent again after 2026-11-23 12:05 UTC",
            )
            for i in (0, 1)  # one on each of the two connections
        ),
    ]
    smtp_server.delay = 0
    later = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=1))
    assert sorted((line.subscriber_id, line.status) for line in later.lines) == [
        ("s0", "waiting"),
        ("s1", "waiting"),
        ("s2", "waiting"),
    ]
    after = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=6))
    assert sorted((line.subscriber_id, line.status) for line in after.lines) == [
        ("s0", "sent"),
        ("s1", "sent"),
        ("s2", "sent"),
    ]
    assert {d["state"] for d in store.deliveries()} == {"sent"}
    tries = {d["subscriber_id"]: d["attempts"] for d in store.deliveries()}
    assert tries == {"s0": 2, "s1": 2, "s2": 1}  # s2 was not tried the first time


@pytest.mark.parametrize("slow", ["rcpt", "data"])
def test_a_relay_slow_before_data_did_not_deliver_and_one_slow_after_data_maybe_did(
    store, make_config, smtp_server, slow
):
    """The whole SMTP transaction counted as "maybe delivered" once the connection was open:
    a relay slow to answer RCPT (nothing sent yet) made the digest wait out the maybe-delivered
    back-off and count towards its three maybe tries. Now only a message whose DATA went out
    unanswered may have arrived; one stuck before DATA was not delivered."""
    # the deadline leaves room for a loaded machine's connect, EHLO and MAIL (at 0.5 s a busy
    # CI host's reached it before DATA, and "maybe delivered" read "not sent")
    if slow == "rcpt":
        smtp_server.rcpt_delay = 3.5
    else:
        smtp_server.delay = 3.5
    config = config_for(make_config, smtp_server.url, n=1, extra="  timeout: 2\n")
    pipeline.fetch_all(store, config, now=NOW)
    [line] = pipeline.send_due(store, config, now=NOW).lines
    [row] = store.deliveries()
    port = smtp_server.port
    assert line.status == "retry"
    if slow == "rcpt":
        assert line.detail == (
            f"SMTP server 127.0.0.1:{port} could not take a message within 2 s "
            "(sender.timeout); it was not sent; tried again after 2026-11-23 12:05 UTC"
        )
        assert row["maybe_sent"] == 0
    else:
        assert line.detail.startswith("maybe delivered: ")
        assert row["maybe_sent"] == 1
    assert (row["state"], row["attempts"]) == ("pending", 1)


def test_a_digest_sent_by_a_later_run_reads_as_its_first_try(store, make_config, smtp_server):
    """A digest resumed from the ledger (a 451, a crash) lost the end of its opening line:
    'Hello s0, 3 papers picked for you.' instead of '... from those paperwire received since
    <date>.': the window's start was not kept with the delivery."""
    smtp_server.data_replies = ["451 4.3.0 mailbox busy"]
    config = config_for(make_config, smtp_server.url, n=1, extra="  retry_attempts: 1\n")
    pipeline.fetch_all(store, config, now=NOW)
    [first] = pipeline.send_due(store, config, now=NOW).lines
    assert first.status == "retry"
    [later] = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=6)).lines
    assert later.status == "sent"
    [msg] = smtp_server.messages
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "received since 2026-11-16" in " ".join(text.split())


def test_an_smtp_4xx_is_tried_again_after_a_back_off_not_on_every_run(
    store, make_config, smtp_server
):
    """A 451 that outlasted the run's retries left the digest due, and every daemon tick (30 s)
    tried again. Now it waits 5 minutes, then 20, then an hour at a time, and fails after six
    tries (an outage of about three and a half hours), saying why."""
    smtp_server.data_replies = ["451 4.3.0 mailbox busy"] * 14
    config = config_for(make_config, smtp_server.url, n=1, extra="  retry_attempts: 2\n")
    pipeline.fetch_all(store, config, now=NOW)
    runs = [
        pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=minutes))
        for minutes in (0, 1, 6, 7, 26, 86, 146, 206)
    ]
    said = [[(line.status, line.detail) for line in run.lines] for run in runs]
    busy = "SMTP 451 for s0@example.org: 4.3.0 mailbox busy"
    assert said == [
        [("retry", f"{busy}; tried again after 2026-11-23 12:05 UTC")],
        [("waiting", f"{busy}; tried again after 2026-11-23 12:05 UTC")],
        [("retry", f"{busy}; tried again after 2026-11-23 12:26 UTC")],
        [("waiting", f"{busy}; tried again after 2026-11-23 12:26 UTC")],
        [("retry", f"{busy}; tried again after 2026-11-23 13:26 UTC")],
        [("retry", f"{busy}; tried again after 2026-11-23 14:26 UTC")],
        [("retry", f"{busy}; tried again after 2026-11-23 15:26 UTC")],
        [
            (
                "failed",
                f"failed 6 times: {busy}; not sent again (check the service, then "
                "`paperwire send` sends what is due)",
            )
        ],
    ]
    assert smtp_server.messages == [] and len(smtp_server.data_replies) == 2  # 6 runs × 2 tries


def test_a_digest_waiting_past_its_grace_period_is_reported_waiting(
    store, make_config, smtp_server
):
    """A digest first tried late in its grace period and maybe delivered waits out its
    back-off after the grace period ended: still due, so ``send`` says 'waiting', not
    'not-due' (seen on a store whose first digests went out 14 hours after their slot)."""
    config = config_for(make_config, smtp_server.url, n=1)
    pipeline.fetch_all(store, config, now=NOW)
    smtp_server.drop_next = 10
    [line] = pipeline.send_due(store, config, now=NOW).lines
    assert line.status == "retry" and line.detail.startswith("maybe delivered: ")
    later = NOW + dt.timedelta(minutes=1)
    [line] = pipeline.send_due(store, config, now=later, grace=dt.timedelta(0)).lines
    assert (line.subscriber_id, line.status) == ("s0", "waiting")
    assert line.detail.startswith("maybe delivered: ")
    # and after its back-off it goes, once, said by its send alone
    smtp_server.drop_next = 0
    after = dt.datetime.fromisoformat(store.deliveries()[0]["retry_at"]) + dt.timedelta(seconds=1)
    report = pipeline.send_due(store, config, now=after, grace=dt.timedelta(0))
    assert [(line.subscriber_id, line.status) for line in report.lines] == [("s0", "sent")]


def test_a_relay_that_offers_no_login_says_so_not_unreachable(store, make_config, smtp_server):
    """A URL with a user and password and a relay without AUTH read 'SMTP server ...
    unreachable: The SMTP AUTH extension is not supported by this server' (found in review):
    it was reached, it offers no login."""
    url = f"smtp://user:secret-pass@127.0.0.1:{smtp_server.port}?insecure_login=1"
    config = config_for(make_config, url, n=1)
    pipeline.fetch_all(store, config, now=NOW)
    [line] = pipeline.send_due(store, config, now=NOW).lines
    assert (line.status, line.detail) == (
        "retry",
        f"SMTP server 127.0.0.1:{smtp_server.port} offers no login (no AUTH in its EHLO "
        "answer), but the URL has a user and password: remove them from it, or use the "
        "relay's port for logins (587 or 465); tried again after 2026-11-23 12:05 UTC",
    )
    assert smtp_server.messages == []


def test_whatever_one_message_raises_is_that_message_s_failure_and_the_others_go(
    make_config, smtp_server
):
    """aiosmtplib raises ValueError for an envelope address it will not write ("Lab Papers
    papers@lab.example.org", which the From check let through): it came out of every send
    as a traceback, the digests left pending, and out of each daemon tick (found in review).
    The README promises that whatever a channel raises fails that delivery, in one line."""
    import asyncio

    from paperwire.deliver.email import Outgoing, SmtpSender

    config = make_config(
        "subscribers:\n  - id: ada\n    email: ada@example.org\n",
        env={"PAPERWIRE_SMTP_URL": smtp_server.url},
    )
    message = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
    items = [
        Outgoing(1, message, "Lab Papers papers@lab.example.org", "b@example.org"),
        Outgoing(2, message, "papers@lab.example.org", "b@example.org"),
    ]
    sender = SmtpSender(config.sender.smtp, connections=1, attempts=1, backoff=0.01)
    outcomes = {o.key: o for o in asyncio.run(sender.send_all(items))}
    assert not outcomes[1].ok and outcomes[1].permanent
    assert outcomes[1].error.startswith("SMTP: unexpected ValueError: Address ")
    assert "\n" not in outcomes[1].error
    assert outcomes[2].ok and sender.failure is None
    assert [sender for sender, _ in smtp_server.envelopes] == ["papers@lab.example.org"]
