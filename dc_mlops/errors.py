"""The one exception users see for bad input.

Every loader and validator raises :class:`DataError` with a single line that names the
file, key or row at fault; the CLI turns it into ``error: <message>`` and exit code 2,
so a DC expert never has to read a traceback to find the broken file.
"""


class DataError(ValueError):
    """Bad input: malformed file, missing/extra column, NaN, duplicate LS, unknown PD..."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
