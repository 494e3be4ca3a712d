"""The one error class whose message is meant for the people using the bot."""

from __future__ import annotations


class UserFacingError(Exception):
    """Raised with a short, specific message that may be shown to a Discord user as it is.

    Anything else that escapes a command is logged with its traceback and the user gets a generic
    apology: raw exception text never reaches users.
    """

    def __init__(self, message: str, *, ephemeral: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.ephemeral = ephemeral
