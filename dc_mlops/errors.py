"""The one exception users see for bad input, and the one rule that keeps secrets out of it.

Every loader and validator raises :class:`DataError` with a single line that names the
file, key or row at fault; the CLI turns it into ``error: <message>`` and exit code 2,
so a DC expert never has to read a traceback to find the broken file.

URLs in messages may carry credentials (``http://alice:SECRET@host``,
``postgresql://optuna:SECRET@db/optuna``): :func:`redact` hides the password wherever a
message of ours shows a URL, and a :class:`DataError` redacts its own text, so no caller can
forget. It lives here, below every layer, because data, settings and tracking all build
such messages.
"""
from __future__ import annotations

import re

#: ``scheme://user:password@`` (the password may not contain ``@``, ``/`` or spaces; a
#: ``host:port/path@x`` has a ``/`` in the would-be password and is left alone)
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")


def redact(text: str) -> str:
    """``text`` with every URL password replaced by ``***`` (the user name stays: it helps
    to see *which* account failed, and is not a secret)."""
    return _CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", str(text))


class DataError(ValueError):
    """Bad input: malformed file, missing/extra column, NaN, duplicate LS, unknown PD..."""

    def __init__(self, message: str):
        super().__init__(redact(" ".join(str(message).split())))
