"""Digest timing with a controllable clock: time zones, DST, weekdays, catch-up, never twice."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from paperwire import pipeline, schedule
from paperwire.config import parse_config
from paperwire.paper import Paper

from .conftest import FIXTURES

UTC = dt.UTC


def sub(zone: str, at: str, days: str = "daily"):
    config = parse_config(
        f"subscribers:\n  - id: ada\n    email: ada@example.org\n    timezone: {zone}\n"
        f"    digest_time: '{at}'\n    digest_days: {days}\n",
        env={},
    )
    return config.subscribers[0]


def walk(start: dt.datetime, hours: float, step_minutes: int = 10):
    now = start
    while now < start + dt.timedelta(hours=hours):
        yield now
        now += dt.timedelta(minutes=step_minutes)


def slots_seen(s, start, hours):
    return Counter(
        schedule.period(slot)
        for now in walk(start, hours)
        if (slot := schedule.latest_slot(s, now, dt.timedelta(hours=2)))
    )


def test_the_slot_is_the_subscribers_local_time():
    ada = sub("Asia/Tokyo", "09:00")
    slot = schedule.latest_slot(ada, dt.datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    assert slot == dt.datetime(2026, 11, 23, 9, 0, tzinfo=ada.tz)
    assert slot.astimezone(UTC) == dt.datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    # an hour earlier it was still the day before's slot
    assert (
        schedule.period(
            schedule.latest_slot(
                ada, dt.datetime(2026, 11, 22, 23, 59, tzinfo=UTC), grace=dt.timedelta(days=1)
            )
        )
        == "2026-11-22"
    )


@pytest.mark.parametrize(
    ("zone", "at", "day"),
    [
        ("Europe/London", "01:30", dt.date(2026, 3, 29)),  # spring forward: 01:30 does not exist
        ("Europe/London", "01:30", dt.date(2026, 10, 25)),  # fall back: 01:30 happens twice
        ("America/New_York", "02:30", dt.date(2026, 3, 8)),
        ("America/New_York", "01:30", dt.date(2026, 11, 1)),
    ],
)
def test_dst_changes_neither_skip_nor_double_a_digest(zone, at, day):
    s = sub(zone, at)
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(0), tzinfo=UTC)
    seen = slots_seen(s, start, 72)
    expected = {(day + dt.timedelta(days=d)).isoformat() for d in (-1, 0, 1)}
    assert expected <= set(seen)
    assert set(seen) <= expected | {
        (day - dt.timedelta(days=2)).isoformat(),
        (day + dt.timedelta(days=2)).isoformat(),
    }
    # each slot is a single moment, reported within its 2 h grace window only
    for period in expected:
        slots = {schedule.latest_slot(s, now, dt.timedelta(hours=2)) for now in walk(start, 72)}
        assert len({x for x in slots if x and schedule.period(x) == period}) == 1


def test_weekdays_only():
    ada = sub("Europe/Paris", "07:00", "weekdays")
    saturday = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    friday = schedule.latest_slot(ada, saturday, dt.timedelta(days=7))
    assert schedule.period(friday) == "2026-11-27"  # Friday's
    assert schedule.latest_slot(ada, saturday, dt.timedelta(hours=12)) is None
    assert schedule.next_slot(ada, saturday) == dt.datetime(2026, 11, 30, 7, 0, tzinfo=ada.tz)


CONFIG = f"""\
feeds:
  - url: {FIXTURES / "arxiv_rss_cs.xml"}
subscribers:
  - id: ada
    email: ada@example.org
    interests: "language models"
    digest_size: 2
    timezone: Europe/London
    digest_time: "01:30"
    digest_days: daily
"""


def test_the_ledger_sends_one_digest_per_day_across_a_dst_change(store, tmp_path):
    """A tick every 20 minutes for four days around the October change: one digest a day."""
    config = parse_config(CONFIG, label="subscribers.yaml", env={})
    start = dt.datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
    pipeline.fetch_all(store, config, now=start - dt.timedelta(days=1))
    for now in walk(start, 4 * 24, step_minutes=20):
        if now.minute == 0 and now.hour == 20:  # something new every evening
            store.add_papers(
                [
                    Paper(
                        f"2610.{now.day:05d}",
                        f"Language models, day {now.day}",
                        abstract="language models",
                        source="t",
                    )
                ],
                now=now,
            )
        pipeline.send_due(
            store, config, now=now, grace=dt.timedelta(hours=12), outbox=tmp_path / "outbox"
        )
    periods = Counter(d["period"] for d in store.deliveries() if d["kind"] == "digest")
    assert periods == {
        "2026-10-23": 1,
        "2026-10-24": 1,
        "2026-10-25": 1,
        "2026-10-26": 1,
        "2026-10-27": 1,
    }
    sent_at = sorted(d["created"] for d in store.deliveries() if d["state"] == "sent")
    # 01:30 local is 00:30 UTC in summer time; on the 25th 01:30 happens twice and the first
    # one counts; from the 26th it is 01:30 UTC. (Ticks every 20 minutes: sent at :40.)
    assert [t[11:16] for t in sent_at[1:]] == ["00:40", "00:40", "01:40", "01:40"]


def test_a_missed_digest_goes_out_once_within_the_grace_period(store, tmp_path):
    config = parse_config(CONFIG, label="subscribers.yaml", env={})
    slot = dt.datetime(2026, 11, 23, 1, 30, tzinfo=UTC)  # London is on UTC in November
    pipeline.fetch_all(store, config, now=slot - dt.timedelta(hours=5))
    # the daemon was down at 01:30 and comes back at 05:00
    back = slot + dt.timedelta(hours=3, minutes=30)
    first = pipeline.send_due(
        store, config, now=back, grace=dt.timedelta(hours=12), outbox=tmp_path
    )
    assert [line.status for line in first.lines] == ["sent"]
    again = pipeline.send_due(
        store,
        config,
        now=back + dt.timedelta(minutes=1),
        grace=dt.timedelta(hours=12),
        outbox=tmp_path,
    )
    assert [line.status for line in again.lines] == ["not-due"]


def test_past_the_grace_period_the_missed_slot_is_skipped_not_lost(store, tmp_path):
    config = parse_config(CONFIG, label="subscribers.yaml", env={})
    slot = dt.datetime(2026, 11, 23, 1, 30, tzinfo=UTC)
    pipeline.fetch_all(store, config, now=slot - dt.timedelta(hours=5))
    late = slot + dt.timedelta(hours=13)
    report = pipeline.send_due(
        store, config, now=late, grace=dt.timedelta(hours=12), outbox=tmp_path
    )
    # not due, and when it will be: the next day's slot
    assert [(line.status, line.detail) for line in report.lines] == [
        ("not-due", "next digest 2026-11-24T01:30+00:00")
    ]
    # the papers are not lost: the next day's digest has them
    next_day = pipeline.send_due(
        store,
        config,
        now=slot + dt.timedelta(days=1, minutes=5),
        grace=dt.timedelta(hours=12),
        outbox=tmp_path,
    )
    assert [line.status for line in next_day.lines] == ["sent"]


def test_a_channel_added_after_the_days_digest_starts_with_the_next_one(store, tmp_path):
    """A channel added after the day's digest went out got a digest of its own that day from
    the papers fetched since, which the e-mail then never got (sent to the reader already);
    with nothing fetched since, its slot was marked 'nothing-new: no new papers', status saying
    it was due. Now the slot was handled (its digest went out), the new channel gets the next
    digest, and the papers fetched meanwhile go to every channel then."""
    from paperwire.status import status

    email_only = CONFIG.replace('"01:30"', '"08:00"')
    with_feed = email_only + "    feed: true\n"
    config = parse_config(email_only, label="subscribers.yaml", env={})
    slot = dt.datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # London is on UTC in November
    pipeline.fetch_all(store, config, now=slot - dt.timedelta(hours=2))
    out = tmp_path / "outbox"
    sent = pipeline.send_due(store, config, now=slot + dt.timedelta(minutes=5), outbox=out)
    assert [line.status for line in sent.lines] == ["sent"]
    later = [
        Paper(
            f"2611.9000{n}", f"Language models, later {n}", abstract="language models", source="t"
        )
        for n in (1, 2)
    ]
    store.add_papers(later, now=slot + dt.timedelta(hours=1))

    config = parse_config(with_feed, label="subscribers.yaml", env={})
    now = slot + dt.timedelta(hours=2)
    ada = status(store, config, now=now).subscribers[0]
    assert ada.due is None and ada.next_slot == slot + dt.timedelta(days=1)
    assert [(c.channel, c.deliveries) for c in ada.channels][1:] == [("feed", ())]
    report = pipeline.send_due(store, config, now=now, outbox=out)
    assert [(line.status, line.detail) for line in report.lines] == [
        (
            "not-due",
            "digest for 2026-11-23 already handled; feed added since, from the next digest on",
        )
    ]
    assert [(d["period"], d["channel"]) for d in store.deliveries()] == [("2026-11-23", "email")]

    tomorrow = pipeline.send_due(store, config, now=slot + dt.timedelta(days=1), outbox=out)
    assert [line.status for line in tomorrow.lines] == ["sent", "sent"]
    rows = store.deliveries(limit=2)
    assert sorted((d["period"], d["channel"]) for d in rows) == [
        ("2026-11-24", "email"),
        ("2026-11-24", "feed"),
    ]
    for row in rows:
        picked = {p["paper_id"] for p in store.delivery_papers(row["id"])}
        assert picked == {"2611.90001", "2611.90002"}, row["channel"]


TOKYO = CONFIG.replace("Europe/London", "Asia/Tokyo").replace('"01:30"', '"08:00"')


def test_a_reader_moving_west_gets_no_older_slot_after_their_last_digest(store, tmp_path):
    """A Tokyo reader's digest for the 10th went out at 08:00 (23:00 UTC on the 9th); they
    moved to Los Angeles, where the 9th's 08:00 had passed 8 hours before: send gave them a
    digest 'for 2026-03-09' two hours after the one for the 10th, and status said it was due.
    That slot came before their last digest, which covered it."""
    from paperwire.status import status

    config = parse_config(TOKYO, label="subscribers.yaml", env={})
    sent_at = dt.datetime(2026, 3, 9, 23, 5, tzinfo=UTC)
    pipeline.fetch_all(store, config, now=sent_at - dt.timedelta(hours=3))
    out = tmp_path / "outbox"
    assert [
        line.status for line in pipeline.send_due(store, config, now=sent_at, outbox=out).lines
    ] == ["sent"]
    store.add_papers(
        [Paper("2603.90001", "Language models, later", abstract="language models", source="t")],
        now=sent_at + dt.timedelta(minutes=30),
    )
    config = parse_config(TOKYO.replace("Asia/Tokyo", "America/Los_Angeles"), env={})
    now = sent_at + dt.timedelta(hours=2)
    ada = status(store, config, now=now).subscribers[0]
    assert ada.due is None
    report = pipeline.send_due(store, config, now=now, outbox=out)
    assert [(line.status, line.detail) for line in report.lines] == [
        ("not-due", "the 2026-03-09 slot came before the 2026-03-10 digest")
    ]
    assert [d["period"] for d in store.deliveries()] == ["2026-03-10"]
    # the 10th's digest went out: status names the 11th's 08:00 in Los Angeles as the next,
    # and that is when the paper fetched since goes out
    la = config.subscribers[0].tz
    assert ada.next_slot == dt.datetime(2026, 3, 11, 8, 0, tzinfo=la)
    assert [
        line.status
        for line in pipeline.send_due(
            store, config, now=dt.datetime(2026, 3, 10, 8, 5, tzinfo=la), outbox=out
        ).lines
    ] == ["not-due"]
    nxt = pipeline.send_due(
        store, config, now=dt.datetime(2026, 3, 11, 8, 5, tzinfo=la), outbox=out
    )
    assert [line.status for line in nxt.lines] == ["sent"]
    assert nxt.lines[0].detail.startswith("1 paper → ")  # not '1 papers'
    assert [p["paper_id"] for p in store.delivery_papers(store.deliveries(limit=1)[0]["id"])] == [
        "2603.90001"
    ]


def test_status_names_the_next_slot_that_will_send_after_the_digest_time_moved_later(
    store, tmp_path
):
    """The day's 08:00 digest went out, then the reader moved their time to 18:00: status said
    'next' was 18:00 that day, when send finds that date handled; it is 18:00 the next day."""
    from paperwire.status import status

    config = parse_config(TOKYO, label="subscribers.yaml", env={})
    tz = config.subscribers[0].tz
    pipeline.fetch_all(store, config, now=dt.datetime(2026, 3, 10, 6, 0, tzinfo=tz))
    pipeline.send_due(store, config, now=dt.datetime(2026, 3, 10, 8, 5, tzinfo=tz), outbox=tmp_path)
    later = parse_config(TOKYO.replace('"08:00"', '"18:00"'), env={})
    ada = status(store, later, now=dt.datetime(2026, 3, 10, 9, 0, tzinfo=tz)).subscribers[0]
    assert ada.due is None
    assert ada.next_slot == dt.datetime(2026, 3, 11, 18, 0, tzinfo=tz)
    at_six = pipeline.send_due(
        store, later, now=dt.datetime(2026, 3, 10, 18, 5, tzinfo=tz), outbox=tmp_path
    )
    assert [(line.status, line.detail) for line in at_six.lines] == [
        ("not-due", "digest for 2026-03-10 already handled")
    ]


def test_a_reader_whose_days_were_all_quiet_waits_out_the_grace_period_like_anyone(store, tmp_path):
    """A reader whose must_match had kept every paper out (each slot 'nothing-new') counted as
    a new reader: back after three days off at 05:00, before the day's 08:00, `send` gave them
    a digest for the day before (22 h past, outside the 12 h grace), where a reader who had had
    digests waits for 08:00."""
    text = CONFIG.replace('"01:30"', '"08:00"') + "    must_match: [zebra]\n"
    config = parse_config(text, label="subscribers.yaml", env={})
    slot = dt.datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # London is on UTC in November
    pipeline.fetch_all(store, config, now=slot - dt.timedelta(hours=2))
    quiet = pipeline.send_due(
        store, config, now=slot, first_reach=pipeline.FIRST_DIGEST_REACH, outbox=tmp_path
    )
    assert [line.status for line in quiet.lines] == ["nothing-new"]
    back = slot + dt.timedelta(days=3, hours=-3)
    zebra = Paper("2611.90001", "Zebra language models", abstract="zebra", source="t")
    store.add_papers([zebra], now=back - dt.timedelta(minutes=5))
    early = pipeline.send_due(
        store, config, now=back, first_reach=pipeline.FIRST_DIGEST_REACH, outbox=tmp_path
    )
    assert [(line.status, line.detail) for line in early.lines] == [
        ("not-due", "next digest 2026-11-26T08:00+00:00")
    ]
    on_time = pipeline.send_due(
        store,
        config,
        now=slot + dt.timedelta(days=3),
        first_reach=pipeline.FIRST_DIGEST_REACH,
        outbox=tmp_path,
    )
    assert [line.status for line in on_time.lines] == ["sent"]
    assert [d["period"] for d in store.deliveries(limit=1)] == ["2026-11-26"]


def test_a_first_digest_is_titled_with_the_day_it_arrives_not_its_slot(store, tmp_path):
    """`paperwire send` gives a reader's first digest the last slot of the past week: a weekly
    Monday reader who subscribed on a Sunday read 'Paperwire <last Monday>', and a 07:30 reader
    in Los Angeles sent theirs at 00:01 read yesterday's date (found in review). The subject
    and the title name the day it was composed in the reader's time zone; the ledger keeps
    the slot's date."""
    import email
    from email import policy

    text = (
        CONFIG.replace("Europe/London", "America/Los_Angeles").replace('"01:30"', '"07:30"')
        + "  - id: weekly\n    email: weekly@example.org\n"
        + '    interests: "language models"\n    timezone: Europe/Berlin\n'
        + '    digest_time: "08:00"\n    digest_days: [mon]\n'
    )
    config = parse_config(text, label="subscribers.yaml", env={})
    now = dt.datetime(2026, 12, 6, 8, 1, tzinfo=UTC)  # Sunday: 00:01 in LA, 09:01 in Berlin
    pipeline.fetch_all(store, config, now=now - dt.timedelta(hours=1))
    report = pipeline.send_due(
        store, config, now=now, first_reach=pipeline.FIRST_DIGEST_REACH, outbox=tmp_path
    )
    assert sorted((line.subscriber_id, line.status) for line in report.lines) == [
        ("ada", "sent"),
        ("weekly", "sent"),
    ]
    periods = {d["subscriber_id"]: d["period"] for d in store.deliveries()}
    assert periods == {"ada": "2026-12-05", "weekly": "2026-11-30"}  # the slots' dates
    for path in sorted(tmp_path.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert msg["Subject"].startswith("Paperwire 2026-12-06: "), path.name
        html = msg.get_body(("html",)).get_content()
        assert "Your papers for 2026-12-06" in html
        assert "Your papers for 2026-12-06" in msg.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    ("zone", "at", "day", "jump"),
    [
        ("Europe/Berlin", "02:30", dt.date(2026, 3, 29), "03:00"),  # 02:00 -> 03:00
        ("America/New_York", "02:30", dt.date(2026, 3, 8), "03:00"),
        ("Australia/Lord_Howe", "02:15", dt.date(2026, 10, 4), "02:30"),  # a half-hour gap
        ("Antarctica/Troll", "02:30", dt.date(2026, 3, 29), "03:00"),  # a two-hour gap
    ],
)
def test_a_digest_time_the_clock_skips_goes_out_as_the_clock_jumps_past_it(zone, at, day, jump):
    # it was read with the offset before the gap: the gap's length after the jump (03:30)
    s = sub(zone, at)
    slot = schedule.slot_time(s, day)
    assert (slot.date(), slot.strftime("%H:%M")) == (day, jump)
    assert slot.astimezone(s.tz).strftime("%H:%M") == jump
    before = slot.astimezone(UTC) - dt.timedelta(seconds=1)  # in UTC: aware arithmetic in
    assert before.astimezone(s.tz).strftime("%H:%M") < at  # one zone is the wall clock's
    assert schedule.latest_slot(s, slot, dt.timedelta(hours=2)) == slot
    # a time that exists is where it was
    assert schedule.slot_time(s, day + dt.timedelta(days=1)).strftime("%H:%M") == at


def test_a_run_with_the_clock_ahead_does_not_silence_the_days_before_it(store, tmp_path):
    """One digest composed while the clock was two days ahead, then the clock set right:
    Monday's and Tuesday's slots counted as covered by that "Wednesday" digest, and the reader
    got nothing for three days, nothing said (found in review). They get their digests, of
    the papers fetched since (not an empty window starting in the future)."""
    config = parse_config(CONFIG.replace('"01:30"', '"08:00"'), label="subscribers.yaml", env={})
    out = tmp_path / "outbox"

    def day(n: int, hour: int = 8, minute: int = 5) -> dt.datetime:
        return dt.datetime(2026, 11, n, hour, minute, tzinfo=UTC)  # London is on UTC

    def paper(n: int) -> None:
        store.add_papers(
            [Paper(f"2611.{n:05d}", f"Language models {n}", "language models", source="t")],
            now=day(n, 6),
        )

    pipeline.fetch_all(store, config, now=day(14))
    for n in (15, 18):  # Sunday, then a run on a clock two days ahead (really Sunday night)
        paper(n)
        sent = pipeline.send_due(store, config, now=day(n), outbox=out)
        assert [line.status for line in sent.lines] == ["sent"]
    for n in (16, 17):  # the clock set right: Monday and Tuesday
        paper(n)
        sent = pipeline.send_due(store, config, now=day(n), outbox=out)
        assert [line.status for line in sent.lines] == ["sent"], sent.lines
    periods = [d["period"] for d in store.deliveries() if d["state"] == "sent"]
    assert sorted(periods) == ["2026-11-15", "2026-11-16", "2026-11-17", "2026-11-18"]
