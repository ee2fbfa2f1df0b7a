"""Errors a user can fix or act on. The CLI turns each into one line on stderr and exit code 2 (1 for a
StageFailed), no traceback."""

from __future__ import annotations


class AlmaError(Exception):
    """Base for every user-fixable problem (bad input, bad config, missing package)."""


class InputError(AlmaError):
    """A seed or prompt file has a bad row. The message names file, line and field."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str):
        self.path, self.line, self.field, self.problem = path, line, field, problem
        where = path if line is None else f"{path}:{line}"
        what = f"field '{field}': {problem}" if field else problem
        super().__init__(f"{where}: {what}")


class ConfigError(AlmaError):
    """A config file or --set override is invalid. The message names the key."""


class RunStateError(AlmaError):
    """The run folder is inconsistent with what was asked (e.g. a changed config on resume)."""


class StageFailed(AlmaError):
    """A stage failed for a reason outside the user's input (a training whose workers Ray Train could not
    restart, say): one line and exit code 1; the committed stages are kept and the full error is logged."""

    exit_code = 1
