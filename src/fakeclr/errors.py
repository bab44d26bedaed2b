"""The one exception type for mistakes a user can fix.

A ``UserError`` carries one sentence that names the file or flag at fault and what to do about it. The CLI prints
it without a traceback and exits with status 2; anything else that escapes is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user (a path, a flag value, a checkpoint): one clear sentence, no traceback."""
