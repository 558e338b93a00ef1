"""Error types shared by stages, sources and the CLI.

`UserError` is bad input: one clear line for the user, exit code 1, never retried.
Anything else raised by a stage is treated as transient and retried by the provider.
"""

from __future__ import annotations


class ReflectorError(Exception):
    """Base class for errors this project raises on purpose."""


class UserError(ReflectorError):
    """Bad input (missing file, corrupt track, bad manifest…): not retried, shown as one line."""


class PermanentStageError(UserError):
    """A stage failed in a way a retry cannot fix."""


class ConfigError(UserError):
    """A setting is missing or malformed."""


class ServiceUnavailable(ReflectorError):
    """An outside service stayed unreachable through every retry: transient (providers retry
    the stage), and on the command line one line, exit 1, like any failed run."""


def one_line(text: object) -> str:
    """`text` with every run of whitespace (newlines included) folded to one space."""
    return " ".join(str(text).split())
