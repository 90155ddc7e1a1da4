"""Shared pytest configuration. Each area keeps its own fixtures in tests/<area>/conftest.py."""
