"""Starting runs from outside the CLI: the Daily.co webhook server, polling, and exactly-once
triggers."""
