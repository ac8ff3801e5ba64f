"""The one exception type for bad user input.

Anything a user can get wrong (a file, a field, a flag) raises ``InputError``
with a single line ``"<file>: <field>: <problem>"``; the CLI prints that line
and exits with status 2, without a traceback and without writing anything.

A bad *option* of a library call (``run_search(sampler=...)``) has no file:
it is an :class:`OptionError` that names the option's field; the CLI, which
alone knows its flags, prints it as ``--sampler: <problem>``.
"""


class InputError(ValueError):
    """Bad user input; ``str(e)`` is one line naming the file, the field and the problem.

    One line whatever the input: a newline or another control character in the message (a key or a value
    quoted from a hostile file) is shown escaped."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (one_line(args[0]),)
        super().__init__(*args)


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (newlines included) escaped as Python does."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class OptionError(InputError):
    """A bad value of the option ``field`` (a settings field, not a flag); ``str(e)`` is ``field: problem``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class DiskFullError(InputError):
    """A write failed for want of space (``ENOSPC``, ``EDQUOT``); ``str(e)`` is one line naming the file.

    Not the user's input, but like bad input it is the user's to fix (free some space) and needs no traceback:
    the writers leave nothing half-written behind, so the same command resumes once there is room.
    """
