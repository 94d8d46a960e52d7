"""Fixtures for moto's S3 server on 127.0.0.1 (filled in by the query-engine work)."""
