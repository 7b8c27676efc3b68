"""Errors lrlab raises for bad or missing data files, and how any exception becomes one line.

Both are ``ValueError`` subclasses so that the CLI's single "user error" handler (one line,
exit code 2) catches them along with every other validation failure, and callers who only
care that the input was wrong can catch ``ValueError``. The message is always ONE line that
names the file (or directory) and what is wrong with it: it is printed as-is to the user,
who must be able to act on it without a traceback.
"""

from __future__ import annotations

__all__ = ["DataError", "DataNotFoundError", "TaskError", "describe", "first_line"]


class DataError(ValueError):
    """A data file is corrupt, truncated, of the wrong format, or not the file it claims to be.

    The message names the file and the mismatch (expected vs actual size, digest, shape...).
    """


class DataNotFoundError(DataError):
    """The data is not where lrlab looked for it.

    The message says which directories were searched and how to provide the data (copy the
    files there, or the ``lrlab download`` command that fetches them).
    """


class TaskError(ValueError):
    """A user's task fails on its first batch (`lrlab.engine.preflight.check_task`): the model,
    the loss, the metric or the data raise or return what a run cannot use.

    The message names the task, what failed and the user's ``file:line``; the original
    exception is its ``__cause__``.
    """


def first_line(reason: object) -> str:
    """The first non-blank line of ``str(reason)``, stripped (``""`` when there is none): how
    an underlying exception's text is embedded in lrlab's one-line messages.

    >>> first_line(ValueError("  bad value\\n  more detail"))
    'bad value'
    >>> first_line(KeyError())
    ''
    """
    for line in str(reason).splitlines():
        if line.strip():
            return line.strip()
    return ""


def describe(error: BaseException) -> str:
    """An exception as a run record or a one-line message keeps it: ``ClassName: first
    line``, or the class name alone when the text is empty.

    >>> describe(ZeroDivisionError("division by zero"))
    'ZeroDivisionError: division by zero'
    >>> describe(MemoryError())
    'MemoryError'
    """
    text = first_line(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
