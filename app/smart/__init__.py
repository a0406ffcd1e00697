"""SMART App Launch client: discovery, scopes, the authorize request, token exchange and refresh (SMART App Launch 2.2)."""
