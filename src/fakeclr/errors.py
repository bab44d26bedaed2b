"""The one exception type for mistakes a user can fix.

A ``UserError`` carries one sentence that names the file or flag at fault and what to do about it. The CLI prints
it without a traceback and exits with status 2; anything else that escapes is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user (a path, a flag value, a checkpoint): one clear sentence, no traceback."""


def check_resolution(value, name: str = "Resolution") -> int:
    """``value`` as an int if it is a power of two >= 4 (every image side G and D work at); else a ``UserError``
    that names ``name`` (a flag such as ``--resolution``, or a constructor argument) and the nearest valid side."""
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise UserError(f"{name} must be a whole number such as 64, got {value!r}.")
    r = int(value)
    if r < 4:
        raise UserError(f"{name} {r} is too small; use a power of two of at least 4, such as 32 or 64.")
    if r & (r - 1):
        lo = 1 << (r.bit_length() - 1)
        nearest = lo if r - lo < 2 * lo - r else 2 * lo
        raise UserError(f"{name} {r} is not a power of two; use the nearest one, {nearest}.")
    return r
