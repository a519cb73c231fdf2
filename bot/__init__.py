"""Chat-platform adapters and the process."""
