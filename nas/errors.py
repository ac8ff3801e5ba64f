"""The one exception type for bad user input.

Anything a user can get wrong (a file, a field, a flag) raises ``InputError``
with a single line ``"<file>: <field>: <problem>"``; the CLI prints that line
and exits with status 2, without a traceback and without writing anything.
"""


class InputError(ValueError):
    """Bad user input; ``str(e)`` is one line naming the file, the field and the problem."""
