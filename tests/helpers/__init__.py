"""Shared test harnesses: a raw HTTP client, a running site, frame builders, fakes.

Test files import from here, never from one another or from ``conftest.py``, which
keeps only fixtures and pytest hooks.
"""
