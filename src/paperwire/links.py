"""Signed links: votes, unsubscribe, the profile page and the private feed.

Every link in a digest is an itsdangerous token that binds the subscriber, the paper and the
action, with a purpose-specific salt and an expiry. The token is the credential: whoever holds
it can act for that subscriber, and for nobody else. A vote link acts on its paper; the page it
opens links on to the reader's profile (a fresh profile token), as the digest's own footer does
with its profile, feed and unsubscribe links: a digest, or any one link of it, forwarded to a
colleague lets them manage that one reader's subscription, never another's.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from itsdangerous import (
    BadData,
    BadSignature,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_decode, base64_encode

from .config import Config
from .errors import FeedbackError, LinkExpired, StoreError
from .store import Store

log = logging.getLogger(__name__)

Action = Literal["up", "down", "undo"]
VOTE_MAX_AGE = 180 * 86400  # a digest's links work for six months
UNSUBSCRIBE_MAX_AGE = 5 * 365 * 86400  # RFC 8058 links must keep working for old messages
PROFILE_MAX_AGE = 365 * 86400
FUTURE_SLACK = 86400  # how far ahead of the clock a link's signing time may be (see _load)
FEED_PURPOSE = "feed"
# payload.timestamp.signature, each unpadded URL-safe base64 (a compressed payload starts with ".")
_TOKEN = re.compile(r"\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class VoteClaim:
    subscriber_id: str
    paper_id: str
    action: Action


class Signer:
    """Makes and checks the tokens in feedback, unsubscribe and profile links."""

    def __init__(self, secret: str, feed_generations: Mapping[str, int] | None = None):
        if not secret:
            raise FeedbackError("no signing key: set PAPERWIRE_SECRET")
        self._secret = secret
        # each subscriber's feed key generation (``paperwire feed rotate`` bumps it; default 0)
        self._feed_generations = dict(feed_generations or {})

    def __repr__(self) -> str:
        return "Signer(secret=***)"

    def _serializer(self, purpose: str, signed_at: int | None = None) -> URLSafeTimedSerializer:
        """``signed_at``: the token's signing time (Unix seconds) instead of now, so that a
        document made again (the private feed, at every poll) has the same links."""
        serializer = URLSafeTimedSerializer(self._secret, salt=f"paperwire.{purpose}")
        if signed_at is not None:
            at = signed_at

            class SignedAt(TimestampSigner):
                def get_timestamp(self) -> int:
                    return at

            serializer.signer = SignedAt
        return serializer

    def vote_token(
        self, subscriber_id: str, paper_id: str, action: Action, signed_at: int | None = None
    ) -> str:
        if action not in ("up", "down", "undo"):
            raise ValueError(action)
        return self._serializer("vote", signed_at).dumps(
            {"s": subscriber_id, "p": paper_id, "a": action}
        )

    def read_vote(self, token: str, max_age: int = VOTE_MAX_AGE) -> VoteClaim:
        data = self._load("vote", token, max_age)
        try:
            claim = VoteClaim(str(data["s"]), str(data["p"]), data["a"])
        except (KeyError, TypeError):
            raise FeedbackError("this link is not a valid paperwire feedback link") from None
        if claim.action not in ("up", "down", "undo"):
            raise FeedbackError("this link is not a valid paperwire feedback link")
        return claim

    def subscriber_token(
        self,
        purpose: Literal["unsubscribe", "profile"],
        subscriber_id: str,
        signed_at: int | None = None,
    ) -> str:
        return self._serializer(purpose, signed_at).dumps({"s": subscriber_id})

    def read_subscriber(
        self, purpose: Literal["unsubscribe", "profile"], token: str, max_age: int | None = None
    ) -> str:
        if max_age is None:
            max_age = UNSUBSCRIBE_MAX_AGE if purpose == "unsubscribe" else PROFILE_MAX_AGE
        data = self._load(purpose, token, max_age)
        if not isinstance(data, dict) or not isinstance(data.get("s"), str):
            raise FeedbackError(f"this link is not a valid paperwire {purpose} link")
        return data["s"]

    def feed_token(self, subscriber_id: str, generation: int | None = None) -> str:
        """The subscriber's feed token: the same string every time (no timestamp), so the feed
        URL in every digest and on the profile page is one URL a reader subscribes to once. The
        generation in it lets ``paperwire feed rotate`` revoke a leaked URL for one reader."""
        if generation is None:
            generation = self._feed_generations.get(subscriber_id, 0)
        return self._stable(FEED_PURPOSE).dumps({"s": subscriber_id, "g": generation})

    def read_feed(self, token: str) -> tuple[str, int]:
        """(subscriber id, feed key generation) of a feed token; FeedbackError unless it is
        exactly a token this key issued (forged, altered, junk appended, another purpose)."""
        serializer = self._stable(FEED_PURPOSE)
        try:
            data = serializer.loads(token)
        except BadData:
            data = None
        valid = (
            isinstance(data, dict)
            and isinstance(data.get("s"), str)
            and type(data.get("g")) is int
            # only the one spelling issued: base64 decoding would forgive extra characters
            and serializer.dumps(data) == token
        )
        if not valid:
            raise FeedbackError("this feed link is invalid or was altered")
        return data["s"], data["g"]

    def _stable(self, purpose: str) -> URLSafeSerializer:
        return URLSafeSerializer(self._secret, salt=f"paperwire.{purpose}.stable")

    def _load(self, purpose: str, token: str, max_age: int) -> dict:
        if not _canonical(token):
            raise FeedbackError(f"this {purpose} link is invalid or was altered")
        try:
            data, signed = self._serializer(purpose).loads(token, return_timestamp=True)
        except BadSignature:
            raise FeedbackError(f"this {purpose} link is invalid or was altered") from None
        # itsdangerous refuses a token signed "in the future": links sent while this server's
        # clock ran ahead, once it is set right (the one-click unsubscribe among them); they
        # are ours, so up to a day ahead they work, their age counted from now
        age = time.time() - signed.timestamp()
        if age > max_age:
            raise LinkExpired("this link has expired; use the links in a newer digest")
        if age < -FUTURE_SLACK:
            raise FeedbackError(
                "this link is dated more than a day ahead of this server's clock; "
                "check the clock, or use the links in a newer digest"
            )
        return data


def _canonical(token: str) -> bool:
    """Whether the token is exactly as it was signed: base64 decoding skips characters outside
    the alphabet and ignores the last character's spare bits, so ``token + "!!"`` would verify
    too. Only the one spelling we issue is accepted."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return False
    signature = match.group(1)
    try:
        return base64_encode(base64_decode(signature)).decode("ascii") == signature
    except BadData:
        return False


def signer_for(config: Config, store: Store, *, sends: bool = True, checks: bool = False) -> Signer:
    """The signer for this install: ``PAPERWIRE_SECRET``, else a random key kept in the store.

    ``sends``: links signed here go out (a send), so the key becomes the one links are signed
    with; False for a command that only prints a link (``status``, ``feed show``), which a
    shell without PAPERWIRE_SECRET may run, and for the web app (``checks``), which answers
    the links the sends signed: a ``serve`` started without the send's PAPERWIRE_SECRET
    recorded its own key, refused every link, and made the next send say each link sent was
    dead (found in review)."""
    generations = store.feed_generations()
    if config.secret is not None:
        key = config.secret.get_secret_value()
    else:
        _warn_no_secret_once(store)
        key = store.generated_secret()
    _say_if_the_key_changed(store, key, sends=sends, checks=checks)
    return Signer(key, generations)


# The databases whose unset PAPERWIRE_SECRET this process has warned about: one run makes a
# signer for each send (`run --once`: the alerts', then the digests'; the daemon: every send,
# and its web app), and each logged the same warning.
_WARNED_NO_SECRET: set[str] = set()
_WARNED_LOCK = threading.Lock()


def _warn_no_secret_once(store: Store) -> None:
    where = str(store.path.resolve())
    with _WARNED_LOCK:
        if where in _WARNED_NO_SECRET:
            return
        _WARNED_NO_SECRET.add(where)
    log.warning(
        "PAPERWIRE_SECRET is not set; signing links with a random key kept in %s", store.path
    )


def _fingerprint(key: str) -> str:
    """Which key signs: an HMAC of a constant, never the key (a one-way function of it)."""
    return hmac.new(key.encode(), b"paperwire.signing-key", hashlib.sha256).hexdigest()[:16]


# (database, key fingerprint) pairs the web app has said refuse the links sent: once each
_WARNED_CHECKS: set[tuple[str, str]] = set()


def _say_if_the_key_changed(
    store: Store, key: str, *, sends: bool = True, checks: bool = False
) -> None:
    """A key other than the last one used (PAPERWIRE_SECRET set on an install that ran on its
    generated key, or changed) makes every link already sent invalid, unsubscribe links
    included: said once, in the log, when it happens. A command that only prints a link says
    its key differs and leaves the record alone: a ``status`` run in a shell without
    PAPERWIRE_SECRET made the next send say every link sent (with PAPERWIRE_SECRET) was dead.
    The web app (``checks``) says so too, once a key, that it refuses the links sent."""
    now = _fingerprint(key)
    before = store.setting("signing_key")
    if before is None:  # a database from before the fingerprint: its generated key, if any
        generated = store.setting("generated_secret")
        before = _fingerprint(generated) if generated is not None else None
    if before == now:
        return
    if checks:
        said = (str(store.path.resolve()), now)
        with _WARNED_LOCK:
            first = before is not None and said not in _WARNED_CHECKS
            _WARNED_CHECKS.add(said)
        if first:
            log.warning(
                "the signing key here (PAPERWIRE_SECRET, or the database's generated one if it "
                "is not set) is not the one links were sent with: every link in digests already "
                "sent (votes, unsubscribe, profile, private feeds) is refused here; run serve "
                "with the PAPERWIRE_SECRET that send uses"
            )
        return
    if not sends:
        if before is not None:
            log.warning(
                "the signing key here (PAPERWIRE_SECRET, or the database's generated one if it "
                "is not set) is not the one links were sent with: a link printed here does not "
                "open where that one is used; run this with the same PAPERWIRE_SECRET"
            )
        return
    if before is not None:
        log.warning(
            "the signing key (PAPERWIRE_SECRET) is not the one links were signed with before: "
            "every link in digests already sent (votes, unsubscribe, profile, private feeds) "
            "no longer works; put the old key back to keep them, or readers use their next "
            "digest's links"
        )
    try:
        with store.briefly():  # a note for next time, not worth a wait behind another's lock
            store.set_setting("signing_key", now)
    except StoreError:  # a read-only database still shows status and serves its pages
        log.debug("the signing key's fingerprint could not be kept", exc_info=True)


@dataclass(frozen=True)
class Links:
    """The signed URLs one digest needs for one subscriber."""

    base_url: str
    signer: Signer
    subscriber_id: str
    # the links' signing time (Unix seconds), None: now (see Signer._serializer)
    signed_at: int | None = None

    def vote(self, paper_id: str, action: Action) -> str:
        token = self.signer.vote_token(self.subscriber_id, paper_id, action, self.signed_at)
        return f"{self.base_url.rstrip('/')}/v/{token}"

    @property
    def unsubscribe(self) -> str:
        token = self.signer.subscriber_token("unsubscribe", self.subscriber_id, self.signed_at)
        return f"{self.base_url.rstrip('/')}/unsubscribe/{token}"

    @property
    def feed(self) -> str:
        """The subscriber's private Atom feed (:mod:`paperwire.render.atom`)."""
        return feed_url(self.base_url, self.signer.feed_token(self.subscriber_id))

    @property
    def profile(self) -> str:
        token = self.signer.subscriber_token("profile", self.subscriber_id, self.signed_at)
        return f"{self.base_url.rstrip('/')}/profile/{token}"


def feed_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/feed/{token}.atom"
