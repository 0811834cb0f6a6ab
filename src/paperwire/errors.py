"""Every error paperwire raises on purpose.

    PaperwireError          base: the CLI prints it as one line and exits 1
    ├── ConfigError         subscribers.yaml or the environment is invalid
    ├── SourceError         a feed could not be fetched or parsed
    ├── StoreError          the SQLite store is unusable (locked, wrong schema)
    │   └── StoreBusy       ... held by another process past the busy timeout (try later)
    ├── RenderError         a template failed to render
    ├── DeliveryError       SMTP or Slack refused or could not be reached
    └── FeedbackError       a signed link is forged, expired or for someone else
        └── LinkExpired     ... signed longer ago than its kind of link works

Messages are built from fields and say how to fix the problem; they never include secrets.
"""

from __future__ import annotations


class PaperwireError(Exception):
    """Base of every deliberate paperwire error."""


class ConfigError(PaperwireError):
    """Raised when subscribers.yaml or a PAPERWIRE_* variable is invalid."""


class SourceError(PaperwireError):
    """Raised when one feed cannot be fetched or parsed; other feeds go on."""


class StoreError(PaperwireError):
    """Raised when the SQLite store cannot be opened or migrated."""


class RenderError(PaperwireError):
    """Raised when a digest template fails to render."""


class DeliveryError(PaperwireError):
    """Raised when a message cannot be delivered.

    ``permanent`` distinguishes a refusal (SMTP 5xx, HTTP 4xx but 408 and 429: do not retry)
    from an outage (connection refused, SMTP 4xx, HTTP 5xx: the digest stays due and a later
    run tries again, after a back-off). ``maybe_delivered``: the message went out and no answer
    came within its deadline, so it may have arrived; retried with back-off too.
    ``retry_after``: seconds the service asked to be left alone (``Retry-After``), if it said.
    ``untried``: the message was never sent (an earlier call still waits for its answer), so
    it does not count as a try; tried again after a back-off. ``out_of_time``: never sent
    either, the run's budget ran out first; the next run sends it.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        maybe_delivered: bool = False,
        retry_after: float | None = None,
        untried: bool = False,
        out_of_time: bool = False,
    ):
        super().__init__(message)
        self.permanent = permanent
        self.maybe_delivered = maybe_delivered
        self.retry_after = retry_after
        self.untried = untried
        self.out_of_time = out_of_time


class FeedbackError(PaperwireError):
    """Raised when a feedback or unsubscribe token is invalid, expired or foreign."""


class LinkExpired(FeedbackError):
    """A signed link that was valid, signed longer ago than its kind of link works."""


class StoreBusy(StoreError):
    """The store stayed locked by another process past the busy timeout: a later try may
    succeed (the web app answers 503 with Retry-After, not 500)."""
