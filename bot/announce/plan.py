"""Which announcements go out this cycle: never a flood in any channel."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from bot.model.posts import Candidate


def choose_for_cycle(candidates: Sequence[Candidate], limit_for_guild: Callable[[int], int],
                     already_sent: Mapping[int, int] | None = None) -> list[Candidate]:
    """Oldest first, at most ``limit_for_guild(guild)`` new messages per channel, counting the
    ``already_sent`` ones of each channel (those of the flood window, e.g. the last poll interval).

    ``sent`` rows only lack their thread (no new message in the channel), so they never use the
    budget; interrupted ``pending`` rows go before queued ones, as they are the oldest work.
    """
    def order(candidate: Candidate) -> tuple[int, datetime, int]:
        rank = {"sent": 0, "pending": 1}.get(candidate.state, 2)
        return rank, candidate.published_at, candidate.announcement_id

    used: dict[int, int] = dict(already_sent or {})
    chosen: list[Candidate] = []
    for candidate in sorted(candidates, key=order):
        if candidate.state == "sent":
            chosen.append(candidate)
            continue
        budget = max(1, limit_for_guild(candidate.guild_id))
        if candidate.state == "pending":  # already counted in already_sent when it became pending
            used[candidate.channel_id] = max(0, used.get(candidate.channel_id, 0) - 1)
        if used.get(candidate.channel_id, 0) >= budget:
            continue
        used[candidate.channel_id] = used.get(candidate.channel_id, 0) + 1
        chosen.append(candidate)
    return chosen
