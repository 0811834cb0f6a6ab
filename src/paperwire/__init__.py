"""paperwire: a self-hosted, personalised research-paper digest bot."""

__version__ = "0.1.0"
