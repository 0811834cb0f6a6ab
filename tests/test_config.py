"""subscribers.yaml: every kind of mistake gets file:line: field: message."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from paperwire.config import load_config, parse_config
from paperwire.errors import ConfigError

GOOD = """\
feeds:
  - url: https://rss.arxiv.org/rss/cs.CL
    name: arxiv-cs-cl
subscribers:
  - id: ada
    name: Ada Lovelace
    email: ada@example.org
    slack_webhook: ${ADA_SLACK_WEBHOOK}
    interests: "KV cache compression"
    seed_papers: ["2309.06180"]
    digest_size: 5
    timezone: Europe/Paris
    digest_time: "07:30"
    digest_days: weekdays
"""


def parse(text: str, env: dict[str, str] | None = None):
    if env is None:
        env = {"ADA_SLACK_WEBHOOK": "https://hooks.example/x"}
    return parse_config(text, label="subscribers.yaml", env=env)


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return str(info.value)


def test_a_good_config_is_read_into_typed_values():
    config = parse(GOOD)
    ada = config.subscriber("ada")
    assert ada.digest_time == dt.time(7, 30)
    assert ada.digest_days == ("mon", "tue", "wed", "thu", "fri")
    assert ada.slack_webhook.get_secret_value() == "https://hooks.example/x"
    assert "hooks.example" not in repr(config)  # secrets stay out of reprs and logs
    assert config.feeds[0].label == "arxiv-cs-cl"


def test_environment_overrides_the_file():
    config = parse(
        GOOD,
        {
            "ADA_SLACK_WEBHOOK": "https://hooks.example/x",
            "PAPERWIRE_SMTP_URL": "smtp://mail:25",
            "PAPERWIRE_FROM": "Bot <bot@example.org>",
            "PAPERWIRE_SECRET": "s3-signing-key-0123",
            "PAPERWIRE_BASE_URL": "https://papers.example.org",
        },
    )
    assert config.sender.smtp_url.get_secret_value() == "smtp://mail:25"
    assert config.sender.from_address == "Bot <bot@example.org>"
    assert config.secret.get_secret_value() == "s3-signing-key-0123"
    assert config.base_url == "https://papers.example.org"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("email: ada@example.org", "email: ada@"),
            "subscribers.yaml:7: subscribers[0].email: 'ada@' is not a valid address",
        ),
        (
            ("digest_size: 5", "digest_size: 0"),
            "subscribers.yaml:11: subscribers[0].digest_size: must be at least 1, not 0",
        ),
        (
            ("timezone: Europe/Paris", "timezone: Mars/Olympus"),
            "subscribers.yaml:12: subscribers[0].timezone: 'Mars/Olympus' is not a known IANA time zone, e.g. Europe/Paris",
        ),
        # a zone in the wrong case or misspelt got the same example (found in review)
        (
            ("timezone: Europe/Paris", "timezone: europe/london"),
            "subscribers.yaml:12: subscribers[0].timezone: 'europe/london' is not a known IANA time zone, did you mean 'Europe/London'?",
        ),
        (
            ("timezone: Europe/Paris", "timezone: Europe/Londn"),
            "subscribers.yaml:12: subscribers[0].timezone: 'Europe/Londn' is not a known IANA time zone, did you mean 'Europe/London'?",
        ),
        (
            ("digest_days: weekdays", "digest_days: [mon, funday]"),
            "subscribers.yaml:14: subscribers[0].digest_days: 'funday' is not a weekday (use mon..sun, 'weekdays' or 'daily')",
        ),
        (
            ("    name: Ada Lovelace\n", "    nmae: Ada Lovelace\n"),
            "subscribers.yaml:6: subscribers[0].nmae: is not a known setting (did you mean 'name'?)",
        ),
        (
            ("  - id: ada", "  - id: 'ada lovelace'"),
            "subscribers.yaml:5: subscribers[0].id: 'ada lovelace' is not a valid id (letters, digits, '.', '_', '-'; at most 64)",
        ),
        (
            ("  - url: https://rss.arxiv.org/rss/cs.CL\n", "  - name_only: x\n"),
            "subscribers.yaml:2: feeds[0].url: is required\n"
            "subscribers.yaml:2: feeds[0].name_only: is not a known setting (did you mean 'name'?)",
        ),
        (
            (
                "    name: Ada Lovelace\n",
                "    name: Ada\n    not_interested: [blockchain, robotics]\n",
            ),
            "subscribers.yaml:7: subscribers[0].not_interested: must be text, not a list",
        ),
        (
            ('digest_time: "07:30"', 'digest_time: "7 am"'),
            "subscribers.yaml:13: subscribers[0].digest_time: '7 am' is not a time like 07:30 (24-hour clock)",
        ),
        # a setting at the wrong level says where it belongs, not only that it is unknown
        (
            ("    digest_days: weekdays\n", "    digest_days: weekdays\ndigest_time: '08:00'\n"),
            "subscribers.yaml:15: digest_time: is not a setting at this level; it is a "
            "subscriber's setting (indent it under a reader in subscribers:)",
        ),
        (
            ("    digest_days: weekdays\n", "    digest_days: weekdays\n    smtp_url: smtp://h\n"),
            "subscribers.yaml:15: subscribers[0].smtp_url: is not a setting at this level; it is "
            "a setting of sender: (indent it under sender:)",
        ),
        (
            ("    name: arxiv-cs-cl\n", "    name: arxiv-cs-cl\n    fetch_timeout_seconds: 5\n"),
            "subscribers.yaml:4: feeds[0].fetch_timeout_seconds: is not a setting at this level; "
            "it is a top-level setting (write it at the start of a line, outside any section)",
        ),
    ],
)
def test_each_mistake_names_file_line_and_field(edit, message):
    old, new = edit
    assert old in GOOD
    assert error_of(GOOD.replace(old, new)) == message


def test_an_interests_text_longer_than_a_list_of_topics_is_refused():
    """A pasted document as interests cost minutes a run (each phrase is encoded); the error
    names the line and says what to write instead."""
    long = "retrieval-augmented generation; " * 400  # 12,800 characters
    assert error_of(GOOD.replace('"KV cache compression"', f'"{long}"')) == (
        "subscribers.yaml:9: subscribers[0].interests: is 12,800 characters long; at most "
        "10,000: write the topics, not a document (seed_papers and 👍 teach the rest)"
    )
    fits = "retrieval-augmented generation; " * 300  # 9,600 characters
    assert parse(GOOD.replace('"KV cache compression"', f'"{fits}"')).subscriber("ada").interests


def test_a_subscriber_needs_a_channel():
    text = GOOD.replace("    email: ada@example.org\n", "").replace(
        "    slack_webhook: ${ADA_SLACK_WEBHOOK}\n", ""
    )
    assert (
        error_of(text)
        == "subscribers.yaml:5: subscribers[0]: needs an email, a slack_webhook, notify URLs or feed: true"
    )


def test_duplicate_ids_point_at_the_second_one():
    text = GOOD + "  - id: ada\n    email: other@example.org\n"
    assert error_of(text) == "subscribers.yaml:15: subscribers[1].id: duplicate subscriber id 'ada'"


def test_ids_that_differ_only_in_case_are_refused():
    """'ada' and 'Ada' share an outbox file on a case-insensitive disk (found in review)."""
    text = GOOD + "  - id: Ada\n    email: other@example.org\n"
    assert error_of(text) == (
        "subscribers.yaml:15: subscribers[1].id: subscriber id 'Ada' differs from 'ada' only in case"
    )


def test_missing_environment_variable_is_named():
    assert error_of(GOOD, env={}) == (
        "subscribers.yaml:8: subscribers[0].slack_webhook: environment variable ADA_SLACK_WEBHOOK "
        "is not set (export it, or write ${ADA_SLACK_WEBHOOK:-default})"
    )


def test_unquoted_yaml_time_is_read_as_a_clock_time():
    config = parse(GOOD.replace('digest_time: "07:30"', "digest_time: 07:30"))
    assert config.subscriber("ada").digest_time == dt.time(7, 30)


def test_env_default_syntax():
    config = parse(
        GOOD.replace("${ADA_SLACK_WEBHOOK}", "${ADA_SLACK_WEBHOOK:-https://hooks.example/d}"),
        env={},
    )
    assert config.subscriber("ada").slack_webhook.get_secret_value() == "https://hooks.example/d"


def test_invalid_yaml_gives_the_line():
    assert error_of("feeds:\n  - url: [unclosed\nsubscribers: []\n").startswith(
        "subscribers.yaml:3: invalid YAML:"
    )


def test_an_unclosed_quote_is_reported_where_it_opens():
    """A quote left open runs to the end of the file: the error named the file's last line,
    'found unexpected end of stream', not the line with the open quote."""
    text = GOOD + 'sender:\n  from_address: "Lab Papers <papers@example.org>\n  list_id: lab\n'
    assert error_of(text) == (
        "subscribers.yaml:16: invalid YAML: a quote that opens on this line is never closed "
        "(found unexpected end of stream at line 18)"
    )
    # a Windows path in double quotes: '\\q' is no escape, and single quotes are the fix
    text = GOOD.replace("https://rss.arxiv.org/rss/cs.CL", '"C:\\qfeeds\\lab.xml"')
    assert error_of(text) == (
        "subscribers.yaml:2: invalid YAML: found unknown escape character (in double quotes a "
        "backslash starts an escape: use single quotes)"
    )


def test_a_space_around_a_time_zone_is_dropped_as_around_a_time_or_an_address():
    """'Europe/Berlin ' (a space copied with it) was 'not a known IANA time zone', while
    digest_time and email drop theirs."""
    text = GOOD.replace("timezone: Europe/Paris", "timezone: 'Europe/Berlin '").replace(
        'digest_time: "07:30"', 'digest_time: "07:30 "'
    )
    ada = parse(text).subscriber("ada")
    assert (ada.timezone, ada.tz.key, ada.digest_time) == (
        "Europe/Berlin",
        "Europe/Berlin",
        dt.time(7, 30),
    )


def test_top_level_must_be_a_mapping():
    assert error_of("- just\n- a list\n") == (
        "subscribers.yaml:1: the top level must be a mapping with feeds and subscribers"
    )


def test_unknown_subscriber_lists_the_known_ones():
    with pytest.raises(
        ConfigError, match=r"^subscribers.yaml: no subscriber 'bob' \(known: ada\)$"
    ):
        parse(GOOD).subscriber("bob")


def test_missing_file_and_bundled_default(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"nope.yaml: no such config file"):
        load_config(tmp_path / "nope.yaml", env={})
    # no path and no ./subscribers.yaml: the bundled example makes the demo work anywhere
    config = load_config(None, env={})
    assert [f.url for f in config.feeds] == [
        "bundled:sample-arxiv-cs.xml",
        "bundled:sample-hf-daily-papers.json",
    ]
    assert len(config.subscribers) >= 2


def test_repo_example_config_is_valid_and_matches_the_bundled_copy():
    repo = Path(__file__).resolve().parents[1]
    example = (repo / "subscribers.yaml").read_text()
    bundled = (repo / "src" / "paperwire" / "data" / "example-subscribers.yaml").read_text()
    assert example == bundled
    interests = {s.interests for s in parse(example).subscribers}
    assert len(interests) == 3  # three subscribers whose digests differ visibly


def test_yaml_1_2_semantics_even_on_the_fast_path():
    # libyaml (YAML 1.1) would read these as booleans; the config means the words
    config = parse(
        GOOD.replace("name: Ada Lovelace", "name: no").replace(
            'interests: "KV cache compression"', "interests: off"
        )
    )
    assert config.subscriber("ada").name == "no"
    assert config.subscriber("ada").interests == "off"


SIX_MISTAKES = """\
feeds:
  - url: ftp://mirror.example.org/cs.xml
subscribers:
  - id: ada
    email: ada@
    digest_time: 7:30
    digest_days: [mon, funday]
    digest_size: ten
  - id: grace
    email: grace@example.org
    timezone: Mars/Olympus
    digest_days: weekly
sender: digest@example.org
"""


def test_every_mistake_is_reported_at_once_in_file_order():
    assert error_of(SIX_MISTAKES).splitlines() == [
        "subscribers.yaml:2: feeds[0].url: ftp:// feeds cannot be read; use http(s)://, file://, "
        "a file path or bundled:NAME",
        "subscribers.yaml:5: subscribers[0].email: 'ada@' is not a valid address",
        "subscribers.yaml:7: subscribers[0].digest_days: 'funday' is not a weekday (use mon..sun, "
        "'weekdays' or 'daily')",
        "subscribers.yaml:8: subscribers[0].digest_size: 'ten' is not a whole number",
        "subscribers.yaml:11: subscribers[1].timezone: 'Mars/Olympus' is not a known IANA time "
        "zone, e.g. Europe/Paris",
        "subscribers.yaml:12: subscribers[1].digest_days: 'weekly' is not a weekday (use mon..sun, "
        "'weekdays' or 'daily')",
        "subscribers.yaml:13: sender: must be a mapping of settings (from_address, smtp_url, …), "
        "not text",
    ]


@pytest.mark.parametrize("written", ["7:30", "07:30", "'7:30'", '"07:30"', "7:30:00"])
def test_a_clock_time_is_read_the_same_however_it_is_written(written):
    config = parse(GOOD.replace('digest_time: "07:30"', f"digest_time: {written}"))
    assert config.subscriber("ada").digest_time == dt.time(7, 30)


def test_yaml_1_2_everywhere_so_a_later_mistake_keeps_its_own_line():
    text = GOOD.replace('digest_time: "07:30"', "digest_time: 7:30").replace(
        "digest_days: weekdays", "digest_days: [mon, yes, 2026-01-01]"
    )
    assert error_of(text) == (
        "subscribers.yaml:14: subscribers[0].digest_days: 'yes' is not a weekday "
        "(use mon..sun, 'weekdays' or 'daily')"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "    digest_days: []",
            "is empty, so no digest would ever be sent: list days like "
            "[mon, wed], or write 'weekdays' or 'daily'",
        ),
        ("    digest_days: 3", "must be a list of days like [mon, wed], 'weekdays' or 'daily'"),
        ("    digest_time: 25:00", "'25:00' is not a time like 07:30 (24-hour clock)"),
        ("    digest_size: 500", "must be at most 100, not 500"),
        ("    digest_size: 2.5", "2.5 is not a whole number"),
        ("    digest_size: .nan", "must be a finite number, not .nan"),
        ("    alerts: maybe", "'maybe' is not true or false"),
        ("    interests:", "is empty; write a value or remove the line"),
        ("    interests: [kv, cache]", "must be text, not a list"),
        (
            "    seed_papers: 2309.06180",
            'must be a list of arXiv ids in quotes, like ["2309.06180"], not a number',
        ),
        ("    follow_authors: Yann LeCun", "must be a list, not text: write ['Yann LeCun']"),
        ("    must_match: agents", "must be a list, not text: write ['agents']"),
        # the advice, pasted back, must give the items written: ['KV cache, speculative
        # decoding'] was one phrase no paper has (must_match then kept every paper out)
        (
            "    must_match: KV cache, speculative decoding",
            "must be a list, not text: write ['KV cache', 'speculative decoding']",
        ),
        (
            "    follow_authors: Yann LeCun, Geoffrey Hinton",
            "must be a list, not text: write ['Yann LeCun', 'Geoffrey Hinton']",
        ),
        (
            "    never_match: robotics; speech",
            "must be a list, not text: write ['robotics', 'speech']",
        ),
        # one name in library order is one name
        ("    follow_authors: LeCun, Yann", "must be a list, not text: write ['LeCun, Yann']"),
    ],
)
def test_messages_say_what_is_expected_never_the_validators_words(line, message):
    field = line.split(":")[0].strip()
    text = "".join(
        f"{line}\n" if old.strip().startswith(f"{field}:") else old
        for old in GOOD.splitlines(keepends=True)
    )
    if text == GOOD:  # a setting GOOD does not have: add it
        text = GOOD + f"{line}\n"
    assert (
        error_of(text)
        == f"subscribers.yaml:{1 + text.splitlines().index(line)}: subscribers[0].{field}: {message}"
    )


def test_an_unquoted_arxiv_id_says_to_quote_it():
    """YAML reads [2309.06180] as the number 2309.0618: 'must be text, not a number' did not
    say that quotes are the fix (nor that the id had already lost its last zero)."""
    text = GOOD.replace('seed_papers: ["2309.06180"]', "seed_papers: [2309.06180, 2504.0641]")
    assert error_of(text).splitlines() == [
        f"subscribers.yaml:10: subscribers[0].seed_papers[{i}]: must be text, not a number: "
        'write arXiv ids in quotes, like "2309.06180" (unquoted, YAML reads a number and '
        "drops its trailing zeros)"
        for i in (0, 1)
    ]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("fetch_timeout_seconds: 0", "fetch_timeout_seconds: must be more than 0, not 0"),
        ("fetch_timeout_seconds: 5000", "fetch_timeout_seconds: must be at most 3600, not 5000"),
        ("fetch_timeout_seconds: .nan", "fetch_timeout_seconds: must be a finite number, not .nan"),
        (
            "fetch_run_budget_seconds: .inf",
            "fetch_run_budget_seconds: must be a finite number, not .inf",
        ),
        ("fetch_max_mb: -0.5", "fetch_max_mb: must be more than 0, not -0.5"),
        ("sender:\n  timeout: 0", "sender.timeout: must be more than 0, not 0"),
        ("alerts:\n  percentile: .nan", "alerts.percentile: must be a finite number, not .nan"),
    ],
)
def test_range_and_finite_checks_say_what_is_expected_too(setting, message):
    # 'Input should be greater than 0' was pydantic's, for every gt=0 setting
    line = 15 + setting.count("\n")
    assert error_of(GOOD + setting + "\n") == f"subscribers.yaml:{line}: {message}"


def _every_bound_broken() -> list[Any]:
    """(GOOD with one setting out of range, the setting's dotted name): each range check of
    every numeric setting broken once, and each one's finiteness (.nan)."""
    import annotated_types as at

    from paperwire.config import (
        AlertConfig,
        Config,
        SenderConfig,
        SubscriberConfig,
        SummariserConfig,
    )

    where = {Config: "", SenderConfig: "sender", AlertConfig: "alerts"}
    where |= {SummariserConfig: "summariser", SubscriberConfig: "subscribers[0]"}
    cases = []
    for model, section in where.items():
        for name, field in model.model_fields.items():
            values = [".nan"] if field.annotation in (int, float, int | None) else []
            for bound in field.metadata:
                if isinstance(bound, at.Gt):
                    values.append(str(bound.gt))
                elif isinstance(bound, at.Ge):
                    values.append(str(bound.ge - 1))
                elif isinstance(bound, at.Lt):
                    values.append(str(bound.lt))
                elif isinstance(bound, at.Le):
                    values.append(str(bound.le + 1))
            for value in values:
                if section == "subscribers[0]":  # ada, GOOD's last subscriber
                    line = f"    {name}: {value}"
                    kept = [old for old in GOOD.splitlines() if not old.startswith(f"    {name}:")]
                    text = "\n".join([*kept, line]) + "\n"
                else:
                    text = GOOD + (
                        f"{section}:\n  {name}: {value}\n" if section else f"{name}: {value}\n"
                    )
                dotted = f"{section}.{name}" if section else name
                cases.append(pytest.param(text, dotted, id=f"{dotted}={value}"))
    return cases


@pytest.mark.parametrize(("text", "name"), _every_bound_broken())
def test_no_range_check_speaks_in_the_validators_words(text, name):
    """Every gt / ge / lt / le / finite check of every setting is in paperwire's words."""
    message = error_of(text)
    assert "Input should" not in message
    assert re.fullmatch(
        rf"subscribers\.yaml:\d+: {re.escape(name)}: (must be (at least|at most|more than|"
        r"less than) -?[\d.]+, not \S+|must be a finite number, not \.nan)",
        message,
    ), message


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        (
            "sender: digest@example.org",
            "must be a mapping of settings (from_address, smtp_url, …), not text",
        ),
        ("sender: [a, b]", "must be a mapping of settings (from_address, smtp_url, …), not a list"),
        (
            "sender:\n  smtp_url: http://relay",
            "http:// is not an SMTP URL; expected smtp://[user:pass@]host[:port] or smtps://… (implicit TLS)",
        ),
    ],
)
def test_sender_mistakes_are_one_line_each(sender, message):
    line = 16 if "smtp_url" in sender else 15
    field = "sender.smtp_url" if "smtp_url" in sender else "sender"
    assert error_of(GOOD + sender + "\n") == f"subscribers.yaml:{line}: {field}: {message}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "smtp://u:hunter2@mail.example.org:587?tls=yes",
            "unknown option 'tls'; the options are timeout (seconds, e.g. timeout=30), verify "
            "(verify=0 or verify=1), starttls (starttls=1 for a relay that offers STARTTLS on "
            "port 465), insecure_login (insecure_login=1 to log in where the relay offers no "
            "TLS)",
        ),
        (
            "smtps://u:hunter2@mail.example.org:465?insecure_login=1",
            "insecure_login=1 goes with smtp:// (smtps:// is always TLS)",
        ),
        # a value not taken: said as the value's fault (it was "goes with smtp://" on smtp://)
        (
            "smtp://u:hunter2@mail.example.org:587?insecure_login=on",
            "insecure_login='on' is not 0 or 1",
        ),
        ("smtp://u:hunter2@mail.example.org:465?starttls=2", "starttls='2' is not 0 or 1"),
        ("smtp://u:hunter2@mail.example.org:99999", "the port is not a number from 1 to 65535"),
        ("smtp://u:hunter2@mail.example.org:smtp", "the port is not a number from 1 to 65535"),
        (
            "smtps://u:hunter2@mail.example.org?timeout=soon",
            "timeout='soon' is not a number of seconds from 0 to 600",
        ),
        ("smtp://u:hunter2@mail.example.org?verify=maybe", "verify='maybe' is not 0 or 1"),
        (
            "mail.example.org",
            "no scheme is not an SMTP URL; expected smtp://[user:pass@]host[:port] or smtps://… (implicit TLS)",
        ),
        (
            "smtp://:hunter2@:25",
            "no host name; expected smtp://[user:pass@]host[:port] or smtps://… (implicit TLS)",
        ),
        # the two TLS styles on each other's port: a 60 s wait for a greeting that never comes
        # ('could not take a message within 60 s'), or 'SSL: WRONG_VERSION_NUMBER', retried
        # for hours
        (
            "smtp://u:hunter2@mail.example.org:465",
            "port 465 expects TLS from the start: write smtps://…:465 (smtp:// is for "
            "STARTTLS, on port 587; a relay that offers STARTTLS on 465: add ?starttls=1)",
        ),
        (
            "smtps://u:hunter2@mail.example.org:587",
            "port 587 takes STARTTLS: write smtp://…:587 (smtps:// is for TLS from the "
            "start, on port 465)",
        ),
    ],
)
def test_the_smtp_url_is_checked_at_load_and_its_password_never_shown(url, message):
    assert error_of(
        GOOD, env={"ADA_SLACK_WEBHOOK": "https://hooks.example/x", "PAPERWIRE_SMTP_URL": url}
    ) == (f"PAPERWIRE_SMTP_URL: {message}")
    assert "hunter2" not in message


def test_starttls_on_port_465_is_taken_when_the_url_says_so():
    """A relay that offers STARTTLS on 465 (a test sandbox) was refused once the two TLS styles
    on each other's port were (found in review: it had sent); ?starttls=1 says it is meant."""
    env = {"ADA_SLACK_WEBHOOK": "https://hooks.example/x"}
    url = "smtp://u:hunter2@sandbox.example.org:465?starttls=1"
    smtp = parse(GOOD, {**env, "PAPERWIRE_SMTP_URL": url}).sender.smtp
    assert (smtp.port, smtp.implicit_tls) == (465, False)
    bad = "smtps://u:hunter2@sandbox.example.org:465?starttls=1"
    assert error_of(GOOD, env={**env, "PAPERWIRE_SMTP_URL": bad}) == (
        "PAPERWIRE_SMTP_URL: starttls=1 goes with smtp:// (smtps:// is TLS from the start)"
    )


def test_a_good_smtp_url_with_options_is_accepted():
    config = parse(
        GOOD,
        {
            "ADA_SLACK_WEBHOOK": "https://hooks.example/x",
            "PAPERWIRE_SMTP_URL": "smtp://relay:2525?timeout=5&verify=0",
        },
    )
    assert config.sender.smtp_url.get_secret_value() == "smtp://relay:2525?timeout=5&verify=0"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "ftp://mirror.example.org/cs.xml",
            "ftp:// feeds cannot be read; use http(s)://, file://, a file path or bundled:NAME",
        ),
        ("https:///rss/cs", "'https:///rss/cs' has no host name"),
        (
            "bundled:nope.xml",
            "'bundled:nope.xml' is not a bundled feed (bundled: sample-arxiv-cs.xml, sample-hf-daily-papers.json)",
        ),
        # arXiv's listing pages are web pages, never a feed: the RSS URL of the same listing
        (
            "https://arxiv.org/list/cs.CL/new",
            "arXiv's listing pages are web pages, not feeds; use https://rss.arxiv.org/rss/cs.CL",
        ),
        (
            "http://export.arxiv.org/list/hep-th/pastweek?show=50",
            "arXiv's listing pages are web pages, not feeds; use https://rss.arxiv.org/rss/hep-th",
        ),
    ],
)
def test_feed_urls_are_checked_at_load(url, message):
    text = GOOD.replace("https://rss.arxiv.org/rss/cs.CL", url)
    assert error_of(text) == f"subscribers.yaml:2: feeds[0].url: {message}"


@pytest.mark.parametrize(
    "url", ["feeds/lab.xml", "/srv/feeds/lab.xml", "file:///srv/lab.xml", "C:\\feeds\\lab.xml"]
)
def test_feed_paths_are_accepted(url):
    assert parse(GOOD.replace("https://rss.arxiv.org/rss/cs.CL", url)).feeds[0].url == url


def test_the_slack_signing_secret_is_read_through_the_config():
    config = parse(
        GOOD,
        {"ADA_SLACK_WEBHOOK": "https://hooks.example/x", "PAPERWIRE_SLACK_SIGNING_SECRET": "sig"},
    )
    assert config.slack_signing_secret.get_secret_value() == "sig"
    assert "sig'" not in repr(config)
    assert parse(GOOD).slack_signing_secret is None


def test_one_grace_period_default_everywhere():
    import inspect

    from paperwire import cli, daemon, pipeline, schedule
    from paperwire.config import DEFAULT_GRACE

    assert dt.timedelta(hours=12) == DEFAULT_GRACE
    for function in (pipeline.send_due, schedule.latest_slot, daemon.Daemon.__init__):
        assert inspect.signature(function).parameters["grace"].default == DEFAULT_GRACE
    run_grace = next(p for p in cli.run.params if p.name == "grace_hours")
    assert run_grace.default == 12


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n", "---\n"])
def test_an_empty_config_says_there_is_nothing_to_do_and_how_to_start(text):
    assert error_of(text) == (
        "subscribers.yaml: nothing to do: the file has no feeds and no subscribers. "
        "`paperwire init` writes a commented subscribers.yaml to start from"
    )


def test_a_key_written_twice_is_a_mistake():
    text = GOOD.replace("    digest_size: 5\n", "    digest_size: 5\n    digest_size: 6\n")
    assert error_of(text) == (
        "subscribers.yaml:12: subscribers[0].digest_size: appears twice (first on line 11)"
    )


ALIAS_BOMB = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 10)]
    + ["subscribers: *a9", ""]
)


def test_an_alias_bomb_is_refused_before_it_expands():
    assert error_of(ALIAS_BOMB) == (
        "subscribers.yaml:5: aliases expand to more than 10,020 values; a config needs far "
        "fewer (an alias bomb?)"
    )


def test_aliases_a_config_would_use_are_fine():
    text = GOOD + "  - id: bob\n    email: bob@example.org\n    digest_days: &days [mon, fri]\n"
    text += "  - id: eve\n    email: eve@example.org\n    digest_days: *days\n"
    assert parse(text).subscriber("eve").digest_days == ("mon", "fri")


def test_deep_nesting_is_refused():
    assert error_of("feeds: " + "[" * 100_000 + "]" * 100_000 + "\n") == (
        "subscribers.yaml:1: values nested deeper than 32 levels"
    )


def test_a_huge_file_is_refused_without_reading_it(tmp_path: Path):
    path = tmp_path / "subscribers.yaml"
    with path.open("wb") as handle:
        handle.write(b"subscribers:\n  - id: ada\n    email: ada@\n")
        handle.truncate(50 * 1024 * 1024)  # 50 MB (sparse: quick to write)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        f"{path}: larger than 16 MB, far more than any config needs; is it the right file?"
    )


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path):
    path = tmp_path / "subscribers.yaml"
    path.write_bytes(GOOD.replace("Ada Lovelace", "Ad\xe9").encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}:6: not UTF-8 text (save the file as UTF-8)"


def test_notify_urls_are_checked_by_apprise_at_load_with_the_other_mistakes(http_server, caplog):
    """Apprise's own parser reads each URL; nothing is sent, and no URL is echoed (tokens)."""
    from .conftest import Route

    http_server.routes["/notify"] = Route(b"{}")
    text = GOOD.replace(
        "    digest_size: 5\n",
        "    digest_size: 0\n"
        "    notify:\n"
        f"      - json://127.0.0.1:{http_server.port}/notify\n"
        "      - discord://tokenSECRET1\n"
        "      - bogus://tokenSECRET2\n"
        "      - tokenSECRET3\n"
        "      - tgram://123456789:tokenSECRET4/-100200300\n",
    )
    message = error_of(text)
    assert message.splitlines() == [
        "subscribers.yaml:11: subscribers[0].digest_size: must be at least 1, not 0",
        "subscribers.yaml:14: subscribers[0].notify[1]: Apprise cannot read this discord:// URL "
        "(a token, host or target is missing or malformed; see its wiki for the form)",
        "subscribers.yaml:15: subscribers[0].notify[2]: bogus:// is not a service Apprise knows "
        "(see its wiki for the URL forms)",
        "subscribers.yaml:16: subscribers[0].notify[3]: is not a URL (expected SERVICE://…, "
        "e.g. discord://… or tgram://…)",
    ]
    assert "SECRET" not in message and "SECRET" not in caplog.text  # nor in the log
    assert http_server.requests == []  # reading a URL sends nothing
    good = parse(text.replace("digest_size: 0", "digest_size: 5").replace(
        "      - discord://tokenSECRET1\n      - bogus://tokenSECRET2\n      - tokenSECRET3\n", ""
    ))  # fmt: skip
    assert [u.get_secret_value().split(":")[0] for u in good.subscriber("ada").notify] == [
        "json",
        "tgram",
    ]


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.org",
        "Ada.Lovelace+digest@Example.ORG",
        "o'brien@mail.example.co.uk",
        "a!#$%&'*+/=?^_`{|}~-b@example.org",
        "Ada <ada@example.org>",
        "ü@example.org",
        "ada@bücher.example",
        '"quoted local"@example.org',
        "x" * 64 + "@example.org",
        "ada@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 57,
        "ada@",
        "@example.org",
        "ada@example",
        "ada@localhost",
        "ada..b@example.org",
        ".ada@example.org",
        "ada.@example.org",
        "x" * 65 + "@example.org",
        "ada@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63,
        "ada@exa mple.org",
        "ada@-example.org",
        "ada@example..org",
        "ada@example.123",
        "ada@[127.0.0.1]",
        "ada@example.invalid",
        "a@b@example.org",
        "ada example.org",
    ],
)
def test_an_address_is_accepted_or_refused_as_pydantic_email_check_does(address):
    # the config's quick path for plain addresses must agree with the full check it replaces
    from pydantic import TypeAdapter, ValidationError
    from pydantic.networks import EmailStr

    try:
        expected = TypeAdapter(EmailStr).validate_python(address)
    except ValidationError as exc:
        expected = ("refused", exc.errors()[0]["msg"])
    text = GOOD.replace("email: ada@example.org", f"email: {json.dumps(address)}")
    try:
        got = parse(text).subscribers[0].email
    except ConfigError as exc:
        got = ("refused", str(exc))
    if isinstance(expected, tuple):
        assert got == (
            "refused",
            f"subscribers.yaml:7: subscribers[0].email: {address!r} is not a valid address",
        )
    else:
        assert got == expected


# -- issue 26: control characters and URLs that would only fail at send time ---------------

CR = "contains a carriage return (\\r, as a file or .env saved with Windows line endings leaves)"


def test_a_crlf_config_loads_and_a_cr_from_the_environment_is_refused_at_its_line(
    tmp_path: Path,
):
    """A CRLF file is fine YAML; a webhook read from a CRLF .env file ends in \\r, which httpx
    refused mid-send (a traceback, and the next reader's e-mail never went out)."""
    path = tmp_path / "subscribers.yaml"
    path.write_bytes(GOOD.replace("\n", "\r\n").encode())
    hook = "https://hooks.slack.com/services/T0/B0/abcdef"
    config = load_config(path, env={"ADA_SLACK_WEBHOOK": hook})
    assert config.subscriber("ada").slack_webhook.get_secret_value() == hook
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"ADA_SLACK_WEBHOOK": hook + "\r"})
    assert str(info.value) == (
        f"{path}:8: subscribers[0].slack_webhook: {CR} at character 46; remove it"
    )
    assert "abcdef" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"PAPERWIRE_FROM": "Paperwire <digest@example.org>\r\nBcc: x@example.org"},
            f"PAPERWIRE_FROM: {CR} at character 31; remove it",
        ),
        (
            {"PAPERWIRE_BASE_URL": "https://papers.example.org\r"},
            f"PAPERWIRE_BASE_URL: {CR} at character 27; remove it",
        ),
        (
            {"PAPERWIRE_SMTP_URL": "smtp://u:hunter2@mail.example.org:587\r"},
            f"PAPERWIRE_SMTP_URL: {CR} at character 38; remove it",
        ),
        # a CR left by a .env file is a different key than the same secret typed in a shell:
        # the links `feed show` printed there did not open what the daemon signed
        (
            {"PAPERWIRE_SECRET": "abcdefghijklmnopqrstu\r"},
            f"PAPERWIRE_SECRET: {CR} at character 22; remove it",
        ),
        (
            {"PAPERWIRE_SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5\r"},
            f"PAPERWIRE_SLACK_SIGNING_SECRET: {CR} at character 33; remove it",
        ),
        (
            {"PAPERWIRE_FROM": "digest"},
            "PAPERWIRE_FROM: 'digest' is not an address like digest@example.org or "
            "'Paperwire <digest@example.org>'",
        ),
        # a short key was masked inside "shorter" of its own message: "is ***er than"
        (
            {"PAPERWIRE_SECRET": "short"},
            "PAPERWIRE_SECRET: is shorter than 16 characters, so one signed link gives it away; "
            'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"',
        ),
        # passed, and every e-mail send then died at MAIL FROM with a traceback (found in
        # review): a name without brackets, two addresses, a bracket never closed
        *(
            (
                {"PAPERWIRE_FROM": value},
                f"PAPERWIRE_FROM: {value!r} is not an address like digest@example.org or "
                "'Paperwire <digest@example.org>'",
            )
            for value in (
                "Lab Papers papers@lab.example.org",
                "papers@lab.example.org, other@x.org",
                "Lab <papers@lab.example.org",
            )
        ),
    ],
)
def test_header_and_url_values_from_the_environment_are_checked_at_load(env, message):
    assert error_of(GOOD, env={"ADA_SLACK_WEBHOOK": "https://hooks.example/x", **env}) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('base_url: "not a url"', "base_url: 'not a url' is not an http(s) URL (expected one like https://papers.example.org)"),
        ("base_url: ftp://papers.example.org", "base_url: 'ftp://papers.example.org' is not an http(s) URL (expected one like https://papers.example.org)"),
        ('base_url: "https://papers.example.org\\e[2J"', "base_url: contains an escape character (\\x1b) at character 27; remove it"),
        # serve answers at the root: under a proxy's path every link was a 404, or its pages'
        # forms and scripts missed the prefix; a password would be in every digest's links
        ("base_url: https://example.org/paperwire/", "base_url: 'https://example.org/paperwire/' has a path; paperwire serve answers at the root of its address, so give it a host name or port of its own (e.g. https://example.org)"),
        ("base_url: https://example.org/?x=1", "base_url: 'https://example.org/?x=1' has a path; paperwire serve answers at the root of its address, so give it a host name or port of its own (e.g. https://example.org)"),
        ("base_url: https://bob@example.org", "base_url: a user name or password in base_url would be in every digest's links"),
        ("arxiv_api_url: export.arxiv.org/api/query", "arxiv_api_url: 'export.arxiv.org/api/query' is not an http(s) URL (expected one like https://export.arxiv.org/api/query)"),
        ('summariser: {enabled: true, base_url: "http://127.0.0.1:99999/v1"}', "summariser.base_url: 'http://127.0.0.1:99999/v1' is not a valid URL (expected one like http://127.0.0.1:11434/v1)"),
        ('sender: {list_id: "papers.example.org\\n"}', "sender.list_id: contains a line break (\\n) at character 19; remove it"),
    ],
)  # fmt: skip
def test_base_url_and_service_urls_are_checked_at_load(text, message):
    assert error_of(GOOD + text + "\n") == f"subscribers.yaml:15: {message}"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("url: https://rss.arxiv.org/rss/cs.CL", 'url: "https://u:pw@rss.example.org/cs\\t"', "feeds[0].url: contains a tab (\\t) at character 32; remove it"),
        ("name: arxiv-cs-cl", 'name: "arxiv\\e]8;;"', "feeds[0].name: contains an escape character (\\x1b) at character 6; remove it"),
        ("email: ada@example.org", 'email: "ada@example.org\\r"', f"subscribers[0].email: {CR} at character 16; remove it"),
        ("name: Ada Lovelace", 'name: "Ada\\nBcc: x@example.org"', "subscribers[0].name: contains a line break (\\n) at character 4; remove it"),
        ("slack_webhook: ${ADA_SLACK_WEBHOOK}", "slack_webhook: hooks.slack.com/services/T0/B0/abcdef", "subscribers[0].slack_webhook: the value is not an http(s) URL (expected one like https://hooks.slack.com/services/T…/B…/…)"),
        ("slack_webhook: ${ADA_SLACK_WEBHOOK}", 'notify: ["json://127.0.0.1/hook\\r"]', f"subscribers[0].notify[0]: {CR} at character 22; remove it"),
    ],
)  # fmt: skip
def test_control_characters_are_refused_in_every_url_address_and_header(old, new, message):
    text = GOOD.replace(old, new)
    assert text != GOOD
    line = 1 + next(i for i, row in enumerate(text.splitlines()) if new[:14] in row)
    assert error_of(text) == f"subscribers.yaml:{line}: {message}"
    assert "pw@" not in message and "abcdef" not in message


def test_the_summariser_key_is_checked_at_load_without_showing_it():
    text = GOOD + "summariser: {enabled: true, api_key_env: SUMMARY_KEY}\n"
    env = {"ADA_SLACK_WEBHOOK": "https://hooks.example/x", "SUMMARY_KEY": "sk-123456\r"}
    assert error_of(text, env) == (
        f"subscribers.yaml:15: summariser.api_key_env: the key in $SUMMARY_KEY {CR} at "
        "character 10; remove it"
    )


def test_a_short_secret_in_the_file_is_refused_without_quoting_it():
    with pytest.raises(ConfigError) as caught:
        parse("secret: tiny-key\n" + GOOD)
    message = str(caught.value)
    assert message.startswith("subscribers.yaml:1: secret: is shorter than 16 characters")
    assert "tiny-key" not in message


# -- found in review (2026-12-07): secrets quoted in errors, tracebacks, silent mistakes --------

MINIMAL = "subscribers:\n  - id: ada\n    email: ada@example.org\n"


@pytest.mark.parametrize(
    ("text", "env", "secret"),
    [
        # a value the environment gave, quoted as it failed
        (MINIMAL + "    timezone: ${APIKEY}\n", {"APIKEY": "sk-APIKEYSECRET777"}, "APIKEYSECRET"),
        (MINIMAL.replace("ada@example.org", "${HOOK}"),
         {"HOOK": "https://hooks.slack.com/services/T1/B1/HOOKSECRETXYZ"}, "HOOKSECRET"),
        (MINIMAL + "base_url: https://x:${PW}@example.org:99999\n", {"PW": "smtpSECRETpw99"},
         "SECRETpw"),
        (MINIMAL, {"PAPERWIRE_BASE_URL": "https://u:ENVSECRET5@example.org:8o"}, "ENVSECRET"),
        # a URL's credentials and keys, as every log line masks them
        (MINIMAL + "base_url: 'https://admin:LEAK5@papers.example.org:8o80'\n", {}, "LEAK5"),
        (MINIMAL + "summariser:\n  base_url: 'https://api.example.org:44o/v1?api_key=sk-LEAK7'\n",
         {}, "LEAK7"),
        # a password holding '#' or '/' bare ends the credentials: the rest is read as the host
        (MINIMAL + "feeds:\n  - url: 'https://alice:2024#Summer-pass@example.org/feed'\n", {},
         "Summer-pass"),
        (MINIMAL + "feeds:\n  - url: 'https://alice:pa/ss-LEAK1@example.org/feed'\n", {},
         "LEAK1"),
        (MINIMAL, {"PAPERWIRE_SMTP_URL": "smtp://u:1234/SECRET10@mail.example.org:587"},
         "SECRET10"),
    ],
)  # fmt: skip
def test_an_error_never_quotes_a_secret(text, env, secret):
    message = error_of(text, env=env)
    assert secret not in message
    assert message.count("\n") == 0 and ": " in message  # still one line that says where


def test_a_password_cut_by_a_bare_character_says_how_to_write_it():
    message = error_of(MINIMAL + "feeds:\n  - url: 'https://alice:2024#pw@example.org/feed'\n")
    assert message.startswith("subscribers.yaml:5: feeds[0].url: a user name or password")
    assert "%23" in message
    # an '@' in a path after a host without a port is a path: Medium's feeds
    config = parse(MINIMAL + "feeds:\n  - url: 'https://medium.com/feed/@someone'\n")
    assert config.feeds[0].url == "https://medium.com/feed/@someone"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        # Path.expanduser's RuntimeError, a traceback in the CLI and in the daemon's reload
        ("ranking:\n  embeddings: '~nosuchuser-pw/models/x'\n",
         "subscribers.yaml:5: ranking.embeddings: '~nosuchuser-pw/models/x': the home folder"),
        # numbers past what SQLite and the scheduler take: OverflowError tracebacks
        ("ranking:\n  corpus_papers: 100000000000000000000\n",
         "subscribers.yaml:5: ranking.corpus_papers: must be at most 100000000"),
        ("fetch_interval_minutes: 100000000000000\n",
         "subscribers.yaml:4: fetch_interval_minutes: must be at most 43200"),
        # "$" matched before a last newline: a second "ada" with a newline in her file names
        ('  - id: "ada\\n"\n    email: a2@example.org\n',
         "subscribers.yaml:4: subscribers[1].id: 'ada\\n' is not a valid id"),
        # two feeds under one name read as one in output, and their posts' bare guids met
        ("feeds:\n  - {url: 'https://a.example/rss', name: lab}\n"
         "  - {url: 'https://b.example/rss', name: Lab}\n",
         "subscribers.yaml:6: feeds[1].name: 'Lab' names feeds[0] too"),
        # one URL pasted twice: fetched twice a run, counted as two feeds (found in review)
        ("feeds:\n  - {url: 'https://u:pw@a.example/rss', name: lab}\n"
         "  - {url: 'https://u:pw@a.example/rss', name: lab2}\n",
         "subscribers.yaml:6: feeds[1].url: is feeds[0]'s URL too: list it once"),
        # a reference that was taken as the text itself: a public signing key
        ("secret: ${LINK_SIGNING_KEY-}\n",
         "subscribers.yaml:4: secret: a ${…} reference that is not ${NAME}"),
    ],
)  # fmt: skip
def test_a_mistake_a_hand_edit_makes_is_one_line_at_its_line(text, said):
    assert error_of(MINIMAL + text).startswith(said)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        # no suggestion was made under ranking: and summariser:, nor for a short key's case
        ("ranking:\n  embedings: off\n",
         "subscribers.yaml:5: ranking.embedings: is not a known setting (did you mean "
         "'embeddings'?)"),
        ("summariser:\n  modle: x\n",
         "subscribers.yaml:5: summariser.modle: is not a known setting (did you mean 'model'?)"),
        ("feeds:\n  - URL: https://example.org/feed\n",
         "subscribers.yaml:5: feeds[0].URL: is not a known setting (did you mean 'url'?)"),
        # the key itself where its variable's name goes: requests went out with no key
        ("summariser:\n  api_key_env: sk-abc123\n",
         "subscribers.yaml:5: summariser.api_key_env: is the name of the environment variable"),
        # read as a path (the config's folder) or by httpx, and failing only at fetch
        ("feeds:\n  - url: ''\n", "subscribers.yaml:5: feeds[0].url: is empty"),
        ("feeds:\n  - url: 'https://exa mple.org/feed'\n",
         "subscribers.yaml:5: feeds[0].url: 'https://exa mple.org/feed' is not a valid URL: a "
         "space in its host name"),
        # a key pasted with a no-break space looked like the right key in the message
        ("    \xa0name: x\n", "subscribers.yaml:4: subscribers[0].'\\xa0name': is not a known"),
        # a control character was said at line 1, over two lines
        ("    name: x\x0cy\n",
         "subscribers.yaml:4: invalid YAML: control character U+000C is not allowed; remove it"),
        ("feeds:\n\t- url: https://example.org/feed\n", "subscribers.yaml:5: invalid YAML: "
         "found character that cannot start any token (a tab: YAML indents with spaces)"),
    ],
)  # fmt: skip
def test_a_mistake_says_what_to_write(text, said):
    message = error_of(MINIMAL + text)
    assert said in message.splitlines()[-1], message
    assert "sk-abc123" not in message


def test_a_wrong_file_prints_its_first_mistakes_and_how_many_more():
    text = "subscribers:\n" + "".join(f"  - {{id: r{i}, email: nope}}\n" for i in range(500))
    lines = error_of(text).splitlines()
    assert len(lines) == 51
    assert lines[0] == "subscribers.yaml:2: subscribers[0].email: 'nope' is not a valid address"
    assert lines[-1] == "subscribers.yaml: … and 450 more mistakes"
