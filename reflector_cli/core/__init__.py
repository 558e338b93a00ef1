"""Shared leaves every layer may import: models, settings, errors, the retry policy, file
formats and small pure helpers."""
