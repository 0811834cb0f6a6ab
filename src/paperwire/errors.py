"""Every error paperwire raises on purpose.

    PaperwireError          base: the CLI prints it as one line and exits 1
    ├── ConfigError         subscribers.yaml or the environment is invalid
    ├── SourceError         a feed could not be fetched or parsed
    ├── StoreError          the SQLite store is unusable (locked, wrong schema)
    ├── RenderError         a template failed to render
    ├── DeliveryError       SMTP or Slack refused or could not be reached
    └── FeedbackError       a signed link is forged, expired or for someone else

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

    ``permanent`` distinguishes a refusal (5xx, Slack 4xx: do not retry) from an outage
    (connection refused, 4xx: the digest stays due and is retried on the next run).
    ``maybe_delivered``: the message went out and no answer came within its deadline, so it
    may have arrived; it is retried with back-off, never on every run (see ``dispatch``).
    """

    def __init__(self, message: str, *, permanent: bool = False, maybe_delivered: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.maybe_delivered = maybe_delivered


class FeedbackError(PaperwireError):
    """Raised when a feedback or unsubscribe token is invalid, expired or foreign."""
