"""Loading a large subscribers.yaml."""
