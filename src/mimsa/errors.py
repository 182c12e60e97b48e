"""The project's exception family: every error a user can cause is a `MimsaError`.

The CLI turns exactly these into one red line and exit code 2; any other exception is a bug in
mimsa and is shown with its traceback. Each subclass also derives from the builtin error it
refines (ValueError, RuntimeError, ...), so `except ValueError` in user code keeps working.

Messages are one line that names the file, key or sample and says what to do.
"""

from __future__ import annotations


class MimsaError(Exception):
    """Base of every error a user can cause; the message is one line that says what to do."""


class ConfigError(MimsaError, ValueError):
    """A bad configuration key or value; the message names the key and what is allowed."""


class DataError(MimsaError, ValueError):
    """A problem with input data; the message names the file, key and sample."""


class EncoderError(DataError):
    """A pretrained encoder cannot be found or rebuilt offline; the message says what to do."""


class RunError(MimsaError, RuntimeError):
    """A run directory is in a state that forbids the request, or a run does not fit the data
    or the settings it is given (e.g. it would overwrite results, or another process writes
    it)."""


class TrainingError(MimsaError, RuntimeError):
    """Training cannot continue (e.g. a NaN loss); the message names epoch, stage and batch."""


class ContractError(MimsaError, TypeError):
    """A registered model or objective lacks a member of its declared contract."""


class MissingExtraError(MimsaError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require_extra(module: str, extra: str, purpose: str) -> None:
    """Raise `MissingExtraError` naming `pip install "mimsa[extra]"` unless `module` imports."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(f"{purpose} needs the optional package '{module}'; install it "
                                f"with: pip install -e \".[{extra}]\"")


def raised_by_interrupt(err: BaseException) -> bool:
    """True when a Ctrl-C caused `err` (a library turned the KeyboardInterrupt into its own
    error while handling it): it is an interruption to report as such, not a failure."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False
