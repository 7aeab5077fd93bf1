"""The auth service: users, sessions, API keys and token signing keys."""
