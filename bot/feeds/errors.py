"""Every way fetching or parsing a feed can fail, each with a message fit to show an admin."""

from __future__ import annotations

from bot.errors import UserFacingError


class FeedError(UserFacingError):
    """A feed could not be fetched or read; ``message`` says what and, where possible, why."""


class UnsupportedURL(FeedError):
    """Not an http(s) URL with a host."""


class PrivateAddressRefused(FeedError):
    """The host resolves to a private, loopback, link-local or multicast address."""


class FeedDNSError(FeedError):
    """The host name could not be resolved."""


class FeedConnectionError(FeedError):
    """The connection failed (refused, reset, TLS problem...)."""


class FeedTimeout(FeedError):
    """The server did not answer (or finish answering) in time."""


class FeedHTTPError(FeedError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


class FeedRetryLater(FeedHTTPError):
    """429 or 503, possibly with a Retry-After the next poll must honour."""

    def __init__(self, message: str, *, status: int, retry_after_seconds: float | None) -> None:
        super().__init__(message, status=status)
        self.retry_after_seconds = retry_after_seconds


def _rebuild(kind: type[FeedError], message: str, state: dict[str, object]) -> FeedError:
    # Errors with keyword-only fields cross process boundaries (parse workers) intact.
    error = kind.__new__(kind)
    FeedError.__init__(error, message)
    error.__dict__.update(state)
    return error


class TooManyRedirects(FeedError):
    """More than the allowed number of redirects, or a redirect loop."""


class FeedTooLarge(FeedError):
    """The body is over the size cap."""


class EmptyResponse(FeedError):
    """The server sent nothing (or only whitespace)."""


class NotAFeed(FeedError):
    """The document is something else (an HTML page, plain JSON...)."""


class FeedSyntaxError(FeedError):
    """The document is broken XML or JSON and nothing usable could be read from it."""


class UnsafeFeed(FeedError):
    """The document declares XML entities (XML bomb / external entity attack): refused unread."""
