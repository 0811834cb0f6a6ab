"""Deliver stage: e-mail (SMTP or an outbox folder) and Slack incoming webhooks."""
