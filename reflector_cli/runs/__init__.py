"""One recording's run end to end: process, shadow, replay, comparison, dry-run plan and doctor."""
