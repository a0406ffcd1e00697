"""Launches held by the app: typed state, the encrypted store bound to one browser, the per-request context."""
