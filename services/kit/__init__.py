"""The service kit: one way to build, configure, secure, observe and stop every Viarte service."""
