"""subscribers.yaml: every kind of mistake gets file:line: field: message."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

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
            "ADA_SLACK_WEBHOOK": "x",
            "PAPERWIRE_SMTP_URL": "smtp://mail:25",
            "PAPERWIRE_FROM": "Bot <bot@example.org>",
            "PAPERWIRE_SECRET": "s3",
            "PAPERWIRE_BASE_URL": "https://papers.example.org",
        },
    )
    assert config.sender.smtp_url.get_secret_value() == "smtp://mail:25"
    assert config.sender.from_address == "Bot <bot@example.org>"
    assert config.secret.get_secret_value() == "s3"
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
            "subscribers.yaml:11: subscribers[0].digest_size: Input should be greater than or equal to 1",
        ),
        (
            ("timezone: Europe/Paris", "timezone: Mars/Olympus"),
            "subscribers.yaml:12: subscribers[0].timezone: 'Mars/Olympus' is not a known IANA time zone, e.g. Europe/Paris",
        ),
        (
            ("digest_days: weekdays", "digest_days: [mon, funday]"),
            "subscribers.yaml:14: subscribers[0].digest_days: 'fun' is not a weekday (use mon..sun, 'weekdays' or 'daily')",
        ),
        (
            ("    name: Ada Lovelace\n", "    nmae: Ada Lovelace\n"),
            "subscribers.yaml:6: subscribers[0].nmae: is not a known setting",
        ),
        (
            ("  - id: ada", "  - id: 'ada lovelace'"),
            "subscribers.yaml:5: subscribers[0].id: 'ada lovelace' is not a valid id (letters, digits, '.', '_', '-'; at most 64)",
        ),
        (
            ("  - url: https://rss.arxiv.org/rss/cs.CL\n", "  - name_only: x\n"),
            "subscribers.yaml:2: feeds[0].url: is required",
        ),
        (
            ('digest_time: "07:30"', 'digest_time: "7 am"'),
            "subscribers.yaml:13: subscribers[0].digest_time: '7 am' is not a time like 07:30 (24-hour clock)",
        ),
    ],
)
def test_each_mistake_names_file_line_and_field(edit, message):
    old, new = edit
    assert old in GOOD
    assert error_of(GOOD.replace(old, new)) == message


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
