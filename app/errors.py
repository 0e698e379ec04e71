"""Errors a user may see: each carries one line that names the problem."""


class UserError(Exception):
    """A problem with input the user controls (arguments, files, policy).

    The CLI prints ``str(error)`` as a single line and exits with ``exit_code``;
    no traceback is shown.
    """

    exit_code = 2
