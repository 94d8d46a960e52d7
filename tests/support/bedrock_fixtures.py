"""Fixtures for a local bedrock-runtime HTTP endpoint (filled in by the middleware work)."""
