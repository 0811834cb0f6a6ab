"""Web stage: the feedback app behind every link in a digest.

- ``app``: the ASGI app (votes, unsubscribe, the profile page, the Atom feed, Slack actions)
- ``votes``: what a verified vote click changes in the store
- ``pool``: the bounded worker pool its page work runs on
- ``profile``, ``profile_cache``: what the model has learned about a reader, computed once per
  corpus change
"""
