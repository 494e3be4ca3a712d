"""Text of the admin answers (/feed ..., /settings ...), cut to Discord's limits (no discord import)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.announce.admin import GuildSettings
from bot.feeds.models import FeedPreview, PollOutcome
from bot.lookup.format import MESSAGE_LIMIT, fit_lines, link, plural, safe_text, timestamp
from bot.render.text import cut_at_word
from bot.storage.announcements import FailedAnnouncement
from bot.storage.db import utcnow
from bot.storage.feeds import Feed, FeedStatus
from bot.storage.filters import RecentPost
from bot.storage.websub import Subscription

PREVIEW_ITEMS = 3


def feed_label(feed: Feed) -> str:
    """"#3 Example Blog" (the title when known, else the URL)."""
    return f"#{feed.id} " + safe_text(feed.title or feed.url, 80)


def choice_label(feed: Feed) -> str:
    """A feed for autocomplete: one line, at most 100 characters."""
    paused = " (paused)" if feed.paused else ""
    text = f"#{feed.id} {feed.title or ''} {feed.url}".replace("  ", " ")
    return cut_at_word(" ".join(text.split()), 100 - len(paused)) + paused


def _preview_items(preview: FeedPreview, count: int) -> list[str]:
    lines = []
    for entry in preview.newest[:count]:
        when = f" · {timestamp(entry.published, 'd')}" if entry.date_known else ""
        lines.append(f"• {link(safe_text(entry.title, 120), entry.link)}{when}")
    return lines


def format_feed_added(feed: Feed, preview: FeedPreview, *, channel_id: int, backfill: int,
                      ping_role_id: int | None, warnings: Sequence[str] = ()) -> str:
    lines = [
        f"Added **{safe_text(preview.title or preview.url, 120)}** (feed #{feed.id}), announcing in <#{channel_id}>.",
        f"Found {plural(preview.item_count, 'item')}; the newest:",
        *_preview_items(preview, 1),
        (f"The newest {plural(backfill, 'post')} will be announced on the first poll; older items are only "
         "recorded as seen." if backfill else "Nothing already in the feed will be announced, only new posts."),
    ]
    if ping_role_id is not None:
        lines.append(f"New posts will ping <@&{ping_role_id}>.")
    if preview.moved_to:
        lines.append(f"The feed has moved permanently; saved its new address {link('here', preview.moved_to)}.")
    if preview.problem:
        lines.append(f"Note: the feed is partly broken ({safe_text(preview.problem, 200)}), but it could be read.")
    lines.extend(f"⚠️ {warning}" for warning in warnings)
    return cut_at_word("\n".join(lines), MESSAGE_LIMIT)


def format_feed_test(preview: FeedPreview) -> str:
    lines = [f"**{safe_text(preview.title or preview.url, 120)}** ({preview.kind}): "
             f"{plural(preview.item_count, 'item')}. Nothing was saved.",
             f"The newest {min(PREVIEW_ITEMS, len(preview.newest))} as they would be announced:"]
    for entry in preview.newest[:PREVIEW_ITEMS]:
        when = f" · {timestamp(entry.published, 'f')}" if entry.date_known else " · no date in the feed"
        by = f" · by {safe_text(entry.author, 60)}" if entry.author else ""
        lines.append(f"**{link(safe_text(entry.title, 200), entry.link)}**{by}{when}")
        if entry.summary:
            lines.append("> " + safe_text(entry.summary, 300))
    if not preview.newest:
        lines.append("(the feed has no items yet)")
    if preview.problem:
        lines.append(f"Note: the feed is partly broken ({safe_text(preview.problem, 200)}), but it could be read.")
    if preview.moved_to:
        lines.append("The feed has moved permanently to " + link("its new address", preview.moved_to) + ".")
    return cut_at_word("\n".join(lines), MESSAGE_LIMIT)


def feed_state(status: FeedStatus) -> str:
    feed = status.feed
    if feed.disabled_reason:
        return f"⛔ disabled: {safe_text(feed.disabled_reason, 200)} (fix it, then `/feed resume`)"
    if feed.paused:
        return "⏸️ paused (`/feed resume` to start again)"
    if feed.consecutive_failures:
        error = safe_text(feed.last_error or "unknown error", 200)
        return f"⚠️ failing: {plural(feed.consecutive_failures, 'failure')} in a row, last: {error}"
    if not feed.initialized:
        return "🕓 waiting for its first poll"
    return "✅ ok"


def format_filter_test(feed: Feed, described: str, verdicts: Sequence[tuple[RecentPost, bool]]) -> str:
    """``/feed test feed:``: which of the feed's newest stored posts its filter keeps and drops."""
    lines = [f"**{feed_label(feed)}**: filter {safe_text(described, 420)}"]
    if not verdicts:
        lines.append("No posts stored yet for this feed; `/feed poll` it first.")
    for post, kept in verdicts:
        lines.append(f"{'✅ kept' if kept else '🚫 dropped'}: {link(safe_text(post.title, 150), post.canonical_url)}")
    return cut_at_word("\n".join(lines), MESSAGE_LIMIT)


def push_state(feed: Feed, subscription: Subscription | None, enabled: bool, now: datetime) -> str:
    """The WebSub line of a feed in ``/feed list``: live until when, or why not."""
    if subscription is None:
        if not feed.initialized:
            return "push: not known before the first poll"
        return "push: no (the feed names no WebSub hub; polled)"
    if not enabled:
        return "push: off (the feed has a WebSub hub, but PUBLIC_URL and WEB_PORT must both be set)"
    if subscription.live_at(now):
        return f"push: live until {timestamp(subscription.expires_at, 'f')}"
    if subscription.state == "failed":
        retry = f" (next try {timestamp(subscription.next_action_at)})" if subscription.next_action_at else ""
        return f"push: failed: {safe_text(subscription.last_error or 'unknown error', 200)}{retry}"
    if subscription.state == "pending":
        return "push: pending (waiting for the hub to confirm)"
    return "push: subscribing soon"


def format_feed_list(statuses: Sequence[FeedStatus], failures: Sequence[FailedAnnouncement],
                     filters: Mapping[int, str] | None = None, push: Mapping[int, Subscription] | None = None,
                     *, push_enabled: bool = False, now: datetime | None = None) -> str:
    if not statuses and not failures:
        return "No feeds yet. Add one with `/feed add url:<feed address> channel:<#channel>`."
    blocks = []
    for status in statuses:
        feed = status.feed
        success = timestamp(feed.last_success_at) if feed.last_success_at else "never"
        due = "—" if feed.paused or feed.disabled_reason or feed.next_poll_at is None else timestamp(feed.next_poll_at)
        blocks.append(
            f"**{feed_label(feed)}** → <#{feed.channel_id}>\n"
            f"  {feed_state(status)}\n"
            f"  last success {success} · next poll {due} · {plural(status.posts_announced, 'post')} announced · "
            f"{link('feed', feed.url)}"
            + (f"\n  filter: {safe_text(filters[feed.id], 420)}" if filters and feed.id in filters else "")
            + (f"\n  {push_state(feed, push.get(feed.id), push_enabled, now or utcnow())}" if push is not None else ""))
    if failures:
        blocks.append("**Announcements that failed** (fix the channel or permissions; they are not retried):")
        blocks.extend(
            f"• {link(safe_text(failure.title, 80), failure.canonical_url)} in <#{failure.channel_id}>: "
            f"{safe_text(failure.error, 160)} ({timestamp(failure.failed_at)})" for failure in failures)
    return fit_lines(f"**Feeds** ({len(statuses)})", blocks, "…and {left} more not shown.")


def format_poll_outcome(feed: Feed, outcome: PollOutcome) -> str:
    label = feed_label(feed)
    if outcome.status == "failed":
        return f"**{label}**: failed: {safe_text(outcome.error or 'unknown error', 300)}"
    if outcome.status == "disabled":
        return f"**{label}**: failed and is now disabled: {safe_text(outcome.error or 'unknown error', 300)}"
    if outcome.status == "skipped":
        return f"**{label}**: skipped ({safe_text(outcome.error or 'not polled', 200)})"
    if outcome.status in ("not_modified", "unchanged"):
        return f"**{label}**: no change since the last poll."
    parts = [plural(outcome.new_posts, "new post")]
    if outcome.queued:
        parts.append(f"{outcome.queued} queued for announcement")
    elif outcome.new_posts:
        parts.append("none to announce (already published before the feed was added)")
    if outcome.updated_posts:
        parts.append(plural(outcome.updated_posts, "updated post"))
    moved = " The feed moved permanently; its address was updated." if outcome.moved_to else ""
    return f"**{label}**: {', '.join(parts)}.{moved}"


def format_guild_settings(settings: GuildSettings) -> str:
    origin = "" if settings.customised else " (the bot's defaults; change them below)"
    archive = {60: "1 hour", 1440: "24 hours", 4320: "3 days", 10080: "1 week"}.get(
        settings.thread_auto_archive_minutes, f"{settings.thread_auto_archive_minutes} minutes")
    return (f"**Settings for this server**{origin}\n"
            f"• Announcements per channel per 10 minutes: **{settings.announcements_per_cycle}** "
            "(`/settings announcements`)\n"
            f"• New discussion threads archive after: **{archive}** of inactivity (`/settings thread-archive`)")
