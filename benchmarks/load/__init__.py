"""The daemon under load: requests, votes and sends at once."""
