"""The platform-free escalation engine."""
