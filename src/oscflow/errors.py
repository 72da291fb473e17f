"""oscflow's exceptions and exit codes: the single module every layer raises from.

Errors that reach users name the problem and the fix. The command line (``oscflow.cli``) has
one error boundary that turns an exception into a one-paragraph message and an exit code via
``classify``: ``OscflowError`` subclasses carry their own code; a few library failures that are
really problems with the user's input (a missing or unreadable file, a file that is not what it
should be, a request larger than memory) are input errors too; anything else — a bare
``ValueError`` included: input that reaches the user must be refused as a ``ConfigError`` or
``InputError`` naming it — is a bug.
"""

from __future__ import annotations

import enum
import errno
import os
import pickle
import sys
import zipfile
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """Exit status of ``oscflow``. ``NOT_READY``: a platform command found the stack or a model
    version not (yet) in the asked-for state (``status``: unhealthy, ``registry wait``: timed
    out) — not an error of the command itself."""

    OK = 0
    INPUT = 1  # a configuration value, a file or another input cannot be used
    USAGE = 2  # the command line itself: unknown command or option, malformed override
    INTERNAL = 3  # a bug in oscflow: rerun with --debug for the traceback
    NOT_READY = 4


class OscflowError(Exception):
    """Base class for errors that oscflow reports to users without a traceback."""

    exit_code: ExitCode = ExitCode.INPUT


class InputError(OscflowError):
    """An input (a file, a model, a value) cannot be used: the message names it and the fix."""


class UsageError(OscflowError):
    """The command line is malformed (unknown command or option, an override without ``=``)."""

    exit_code = ExitCode.USAGE


class ConfigError(InputError, ValueError):
    """A configuration value is invalid: the message names the key, the value and what is allowed."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = key
        super().__init__(f"{key}: {problem}. Fix: {fix}.")


class OverrideError(UsageError, ConfigError):
    """A ``key=value`` override that cannot be parsed (a usage error, and a ConfigError for
    callers that compose configs themselves)."""


class ClusterError(OscflowError):
    """A Dask cluster could not finish a build (workers killed repeatedly, the scheduler gone):
    the message says what was kept and how to resume."""


class InternalError(OscflowError):
    """Something oscflow itself got wrong (e.g. a result it cannot print): a bug to report."""

    exit_code = ExitCode.INTERNAL


@dataclass(frozen=True)
class Failure:
    """How the command line reports an exception: exit code and one-paragraph message."""

    code: ExitCode
    message: str


_DEBUG_HINT = "rerun with --debug for the full traceback"
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EMFILE}
# MLflow error codes that mean the request (model URI, version, alias) is wrong, not oscflow.
_MLFLOW_INPUT_CODES = {
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "INVALID_PARAMETER_VALUE",
    "INVALID_STATE",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "ENDPOINT_NOT_FOUND",
}


def one_paragraph(text: str) -> str:
    """``text`` on one line: newlines and runs of blanks become single spaces."""
    return " ".join(str(text).split())


def _os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "a file"
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError):
        fix = (
            f"check the path (relative paths start at {os.getcwd()}); datasets and MC pairs "
            "are made by `oscflow simulate` and `oscflow spectra`"
        )
    elif isinstance(exc, PermissionError):
        fix = "make it readable (or writable) for you, or choose another location"
    elif isinstance(exc, IsADirectoryError | NotADirectoryError):
        fix = "give the path of a file where a file is expected, of a directory otherwise"
    elif isinstance(exc, ConnectionError | TimeoutError):
        return (
            f"could not reach a server ({reason}). Fix: is the stack running? "
            "`oscflow status` shows it, `oscflow up` starts it; or check MLFLOW_TRACKING_URI"
        )
    elif exc.errno in _STORAGE_ERRNOS:
        fix = "free space (or file handles) or choose another location, e.g. paths.root_dir=<dir>"
    else:
        fix = "check that file or device"
    return f"{where}: {reason}. Fix: {fix}"


def _mlflow_failure(exc: BaseException) -> Failure | None:
    module = sys.modules.get("mlflow.exceptions")
    base = getattr(module, "MlflowException", None)
    if base is None or not isinstance(exc, base):
        return None
    code = str(getattr(exc, "error_code", ""))
    text = getattr(exc, "message", None) or str(exc)
    if code in _MLFLOW_INPUT_CODES or "Max retries exceeded" in text:
        return Failure(
            ExitCode.INPUT,
            f"MLflow refused the request ({code}: {text}). Fix: check the model URI "
            "(models:/<name>@<alias>, models:/<name>/<version>, runs:/<id>/model), "
            "`oscflow registry show <name>`, and the tracking server (`oscflow status`)",
        )
    return None


def _hydra_failure(exc: BaseException) -> Failure | None:
    hydra_errors = sys.modules.get("hydra.errors")
    if hydra_errors is None:
        return None
    if isinstance(exc, hydra_errors.OverrideParseException):
        return Failure(
            ExitCode.USAGE,
            f"malformed override ({exc}). Fix: write key=value, e.g. params.sin2_th12=0.31; "
            "quote values with spaces or brackets",
        )
    if isinstance(exc, hydra_errors.HydraException):
        return Failure(
            ExitCode.INPUT,
            f"configuration: {exc}. Fix: check the overrides; `oscflow <command> --help` "
            "lists the groups and keys",
        )
    return None


def classify(exc: BaseException) -> Failure:
    """Exit code and message for ``exc``: our own errors, known input failures, else a bug."""
    if isinstance(exc, InternalError):
        return Failure(
            ExitCode.INTERNAL,
            f"internal error: {exc} This is a bug in oscflow, not in your input; "
            f"{_DEBUG_HINT} and report it",
        )
    if isinstance(exc, OscflowError):
        return Failure(exc.exit_code, str(exc))
    for special in (_hydra_failure, _mlflow_failure):
        found = special(exc)
        if found is not None:
            return found
    omegaconf_errors = sys.modules.get("omegaconf.errors")
    if omegaconf_errors is not None and isinstance(exc, omegaconf_errors.OmegaConfBaseException):
        return Failure(
            ExitCode.INPUT,
            f"configuration: {exc}. Fix: set or correct that key "
            "(`oscflow <command> --cfg` prints the composed config)",
        )
    if isinstance(exc, MemoryError):
        return Failure(
            ExitCode.INPUT,
            "out of memory: the request is larger than this machine can hold. Fix: ask for "
            "less (binning.nbins, mc.n_pairs, data.simulate.n_pairs, data.spectra.splits.*, "
            "data.loader.batch_size) or run on a machine with more memory",
        )
    if isinstance(exc, OSError):
        return Failure(ExitCode.INPUT, _os_error(exc))
    if isinstance(exc, zipfile.BadZipFile | EOFError | pickle.UnpicklingError):
        return Failure(
            ExitCode.INPUT,
            f"a file is truncated or not in the expected format ({type(exc).__name__}: "
            f"{exc}). Fix: regenerate or re-download that file ({_DEBUG_HINT} to see which)",
        )
    if isinstance(exc, UnicodeDecodeError):
        return Failure(
            ExitCode.INPUT,
            f"a text file is not valid UTF-8 ({exc}). Fix: give a text file in UTF-8 "
            f"({_DEBUG_HINT} to see which)",
        )
    name = type(exc).__name__
    if name == "JSONDecodeError" or isinstance(exc, _yaml_error()):
        kind = "JSON" if name == "JSONDecodeError" else "YAML"
        return Failure(
            ExitCode.INPUT,
            f"a {kind} file could not be parsed ({exc}). Fix: correct or regenerate that file "
            f"({_DEBUG_HINT} to see which)",
        )
    if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
        return Failure(
            ExitCode.INPUT,
            "a .npy/.npz file holds Python objects, which oscflow does not unpickle (that "
            f"could run code). Fix: give a file of plain numeric arrays ({_DEBUG_HINT} to see "
            "which file)",
        )
    # Any other exception, a bare ValueError included, is a bug: an input oscflow should
    # have refused with a message naming it (an OscflowError), or a fault of its own.
    return Failure(
        ExitCode.INTERNAL,
        f"internal error ({name}: {exc}). This is a bug in oscflow, not in your input; "
        f"{_DEBUG_HINT} and report it",
    )


def _yaml_error() -> type[BaseException] | tuple[()]:
    yaml = sys.modules.get("yaml")
    return getattr(yaml, "YAMLError", ()) if yaml is not None else ()
