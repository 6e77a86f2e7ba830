"""Shared plumbing: settings, database sessions, API errors."""
