"""User-facing errors.

``RestyleError`` is raised for problems a user can fix (a missing file, a bad
parameter). The CLI turns it into one line on stderr and exit code 2; library
callers can catch it like any exception.
"""


class RestyleError(Exception):
    """A problem with the user's input or environment, with a message they can act on."""
