"""A fake Slack and a signed-request simulator, for the demo, tests and benchmarks."""
