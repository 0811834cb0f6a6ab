"""Deliver stage: one :class:`~.channel.Channel` per way a digest reaches a reader (e-mail by
SMTP or into an outbox folder, Slack, Apprise URLs, the private Atom feed), run by
:mod:`.dispatch`."""
