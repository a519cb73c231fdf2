"""Slack adapter (Bolt)."""
