"""Who may turn the pages of a paginated answer, and which page is shown (no discord)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

COMMENTS_PER_PAGE = 8


@dataclass(slots=True)
class Pager:
    """State behind one answer's Previous/Next buttons. Only ``owner_id`` may use them and only
    until ``expires_at`` (monotonic seconds); the buttons are disabled when it expires."""

    owner_id: int
    guild_id: int
    post_id: int
    lifetime: float  # seconds (the settings' tuning)
    page: int = 1
    page_count: int = 1
    expires_at: float = field(default=0.0)

    def __post_init__(self) -> None:
        if not self.expires_at:
            self.expires_at = time.monotonic() + self.lifetime

    def may_use(self, user_id: int) -> bool:
        return user_id == self.owner_id

    def expired(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.expires_at

    def target(self, step: int) -> int:
        """The page a button moving by ``step`` leads to, clamped to the pages that exist."""
        return min(max(1, self.page + step), max(1, self.page_count))

    def show(self, page: int, page_count: int) -> None:
        self.page, self.page_count = page, max(1, page_count)

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.page_count
