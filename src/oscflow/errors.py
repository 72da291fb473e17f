"""Errors that reach users: each message names the problem and the fix."""


class OscflowError(Exception):
    """Base class for errors that oscflow reports to users without a traceback."""


class ConfigError(OscflowError, ValueError):
    """A configuration value is invalid: the message names the key, the value and what is allowed."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = key
        super().__init__(f"{key}: {problem}. Fix: {fix}.")
