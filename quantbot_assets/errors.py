"""Errors a user can act on, one hierarchy for the library and the `quantbot` command.

The command prints the first line of such an error after `error: ` on stderr
and exits with its `exit_code` (2, or 1 when a lookup found nothing); any
other exception is a bug and keeps its traceback. Library errors that are the
user's to fix (settings, sources checked before a run, the policy registry, the
catalog, run directories) derive from these classes as well as from the
built-in class they always had, so existing `except ValueError` still holds.

No imports of the project here: every layer may raise these.
"""

from __future__ import annotations


class QuantbotError(Exception):
    """A one-line error the user can fix; the command exits with `exit_code`."""

    exit_code = 2

    @property
    def line(self) -> str:
        """The first non-empty line of the message (the one-line contract)."""
        lines = [line for line in str(self).splitlines() if line.strip()]
        return lines[0].strip() if lines else type(self).__name__


class UsageError(QuantbotError):
    """A mistake in the command line: a value, a combination of options."""


class DataError(QuantbotError):
    """Inputs that cannot be used: calls, candles, settings, the registry, the catalog."""


class NotFoundError(QuantbotError):
    """A lookup that found nothing (not a mistake): exit code 1."""

    exit_code = 1
