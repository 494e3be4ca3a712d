"""Lookup results as Discord message text, always within Discord's limits.

Stored text (titles, names, comments) is escaped for Discord markdown and has its mentions made
inert; the messages are also sent with ``allowed_mentions`` none. Links are masked and wrapped in
``<>`` so one answer does not unfold into a wall of embeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from bot.lookup.query import FtsQuery
from bot.render.text import cut_at_word, escape_discord_markdown, neutralise_mentions, strip_invisible
from bot.storage.search import (
    SNIPPET_END,
    SNIPPET_START,
    CommentPage,
    GuildStats,
    PostDetails,
    PostSummary,
    SearchHit,
    SearchResults,
)

MESSAGE_LIMIT = 2000
CHOICE_NAME_LIMIT = 100
TITLE_LIMIT = 120
COMMENT_LIMIT = 300
DISCORD_WEB = "https://discord.com/channels"


def one_line(text: str) -> str:
    return " ".join(strip_invisible(text).split())


def safe_text(text: str, limit: int) -> str:
    """Stored text shown literally: one line, cut at a word, markdown escaped, mentions inert."""
    return neutralise_mentions(escape_discord_markdown(cut_at_word(one_line(text), limit)))


def safe_url(url: str) -> str | None:
    """A URL that can sit inside ``[text](<url>)``, or None when it is not http(s)."""
    url = url.strip()
    if not url.lower().startswith(("http://", "https://")):
        return None
    return quote(url, safe=":/?#@!$&'*+,;=%~-._")


def link(text: str, url: str | None) -> str:
    """``text`` (already escaped) as a masked link; plain when there is no usable URL."""
    target = safe_url(url) if url else None
    return f"[{text}](<{target}>)" if target else text


def thread_url(guild_id: int, thread_id: int) -> str:
    return f"{DISCORD_WEB}/{guild_id}/{thread_id}"


def message_url(guild_id: int, thread_id: int, message_id: int) -> str:
    return f"{DISCORD_WEB}/{guild_id}/{thread_id}/{message_id}"


def timestamp(moment: datetime | None, style: str = "R") -> str:
    """A Discord timestamp (shown in each reader's time zone)."""
    return "unknown" if moment is None else f"<t:{int(moment.timestamp())}:{style}>"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def choice_name(title: str) -> str:
    """An autocomplete choice name: 1-100 characters, one line."""
    name = cut_at_word(one_line(title), CHOICE_NAME_LIMIT)
    return name or "Untitled"


def render_snippet(raw: str, limit: int = 240) -> str:
    """A snippet() result with its match markers turned into bold and everything else escaped."""
    raw = raw.replace("\n", " ")
    pieces: list[str] = []
    used = 0
    rest = raw
    while rest and used < limit:
        start = rest.find(SNIPPET_START)
        plain, rest = (rest, "") if start < 0 else (rest[:start], rest[start + 1:])
        if plain:
            shown = cut_at_word(plain, limit - used)
            # safe_text trims; the spaces next to a highlighted word stay.
            lead = " " if shown[:1].isspace() else ""
            trail = " " if shown[-1:].isspace() else ""
            core = safe_text(shown, limit)
            pieces.append(f"{lead}{core}{trail}" if core else lead or trail)
            used += len(shown)
        if start < 0 or used >= limit:
            break
        end = rest.find(SNIPPET_END)
        match, rest = (rest, "") if end < 0 else (rest[:end], rest[end + 1:])
        if match:
            pieces.append("**" + safe_text(match, limit) + "**")
            used += len(match)
    text = "".join(pieces).strip()
    return text or "…"


def post_line(post: PostSummary, *, with_date: bool = True) -> str:
    """"**Title** · 3 comments · 2 days ago · post · discussion"."""
    parts = [f"**{safe_text(post.title, TITLE_LIMIT)}**", plural(post.comment_count, "comment")]
    if with_date and post.published_at is not None:
        parts.append(timestamp(post.published_at))
    links = [link("post", post.url)]
    if post.thread_id is not None:
        links.append(link("discussion", thread_url(post.guild_id, post.thread_id)))
    return " · ".join(parts + links)


def fit_lines(header: str, blocks: Sequence[str], footer_when_cut: str,
              limit: int = MESSAGE_LIMIT) -> str:
    """Join ``blocks`` under ``header`` while they fit; say how many were left out."""
    text = header
    for index, block in enumerate(blocks):
        left = len(blocks) - index
        footer = "\n" + footer_when_cut.format(left=left)
        if len(text) + 1 + len(block) + len(footer) > limit:
            return cut_at_word(text + footer, limit)
        text += "\n" + block
    return cut_at_word(text, limit)


def format_latest(posts: Sequence[PostSummary]) -> str:
    if not posts:
        return "No posts yet: once a feed is added with `/feed add`, new posts show up here."
    blocks = [f"{index}. {post_line(post)}" for index, post in enumerate(posts, 1)]
    return fit_lines(f"**Latest {plural(len(posts), 'post')}**", blocks, "…and {left} more not shown.")


def _hit_block(hit: SearchHit) -> str:
    title = f"**{safe_text(hit.post.title, TITLE_LIMIT)}** · {plural(hit.post.comment_count, 'comment')}"
    links = [link("post", hit.post.url)]
    if hit.post.thread_id is not None:
        links.append(link("discussion", thread_url(hit.post.guild_id, hit.post.thread_id)))
        if hit.message_id is not None:
            links.append(link("comment", message_url(hit.post.guild_id, hit.post.thread_id, hit.message_id)))
    who = f"{safe_text(hit.author_name, 60)}: " if hit.author_name else ""
    return f"{title} · {' · '.join(links)}\n> {who}{render_snippet(hit.snippet)}"


def format_search(results: SearchResults, query: FtsQuery) -> str:
    shown = safe_text(query.describe(), 100)
    notes = "".join(f"\n-# Note: {note}." for note in query.notes)
    if not results.posts and not results.comments:
        return cut_at_word(
            f"Nothing found for `{shown.replace('`', '')}`. Try fewer or shorter words, or `word*` "
            f"to match word beginnings.{notes}", MESSAGE_LIMIT)
    blocks: list[str] = []
    if results.posts:
        blocks.append("__Posts__")
        blocks.extend(_hit_block(hit) for hit in results.posts)
    if results.comments:
        blocks.append("__Comments__")
        blocks.extend(_hit_block(hit) for hit in results.comments)
    more = ""
    if results.more_posts or results.more_comments:
        more = "\n-# More matches exist; add words to narrow the search."
    header = f"**Search:** `{shown.replace('`', '')}`{notes}"
    return fit_lines(header, [*blocks[:-1], blocks[-1] + more], "…{left} more lines not shown.")


def format_post_details(details: PostDetails) -> str:
    post = details.post
    lines = [f"**{safe_text(post.title, 250)}**"]
    byline = []
    if details.author:
        byline.append(f"by {safe_text(details.author, 80)}")
    if post.published_at is not None:
        byline.append(f"published {timestamp(post.published_at, 'D')}")
    if byline:
        lines.append(" · ".join(byline))
    if details.summary:
        lines.append("> " + safe_text(details.summary, 350))
    links = [link("Read the post", post.url)]
    if post.thread_id is not None:
        links.append(link("Join the discussion", thread_url(post.guild_id, post.thread_id)))
    lines.append(" · ".join(links))
    lines.append(f"**Comments:** {post.comment_count}")
    people = plural(details.participant_count, "participant")
    if details.participant_names:
        people += ": " + ", ".join(safe_text(name, 40) for name in details.participant_names)
        if details.participant_count > len(details.participant_names):
            people += ", …"
    lines.append(f"**People:** {people}")
    lines.append(f"**Last activity:** {timestamp(details.last_activity)}"
                 if details.last_activity else "**Last activity:** no comments yet")
    if details.top_reactions:
        lines.append("**Top reactions:** " + "  ".join(
            f"{_emoji(reaction.emoji)} {reaction.count}" for reaction in details.top_reactions))
    return cut_at_word("\n".join(lines), MESSAGE_LIMIT)


def _emoji(stored: str) -> str:
    """Unicode emoji as they are; custom ones (stored ``name:id``) as ``:name:``, which cannot
    break when the emoji is not available to the bot."""
    if ":" in stored:
        name = stored.split(":", 1)[0]
        return f":{safe_text(name, 32)}:"
    return neutralise_mentions(stored)


def format_comment_page(page: CommentPage) -> str:
    post = page.post
    header = f"**{safe_text(post.title, TITLE_LIMIT)}** · {plural(page.total, 'comment')}"
    if page.page_count > 1:
        header += f" · page {page.page}/{page.page_count}"
    if post.thread_id is not None:
        header += " · " + link("discussion", thread_url(post.guild_id, post.thread_id))
    if not page.comments:
        return cut_at_word(header + "\nNo comments yet. Be the first to say something in the discussion!",
                           MESSAGE_LIMIT)
    budget = (MESSAGE_LIMIT - len(header) - 40) // len(page.comments)
    blocks = []
    for comment in page.comments:
        name = safe_text(comment.author_name, 40) + (" [bot]" if comment.is_bot else "")
        extras = []
        if comment.edited:
            extras.append("edited")
        if comment.attachment_count:
            extras.append(plural(comment.attachment_count, "attachment"))
        suffix = f" ({', '.join(extras)})" if extras else ""
        jump = ""
        if post.thread_id is not None:
            jump = " " + link("↗", message_url(post.guild_id, post.thread_id, comment.message_id))
        head = f"**{name}** {timestamp(comment.created_at)}{suffix}{jump}: "
        room = max(40, min(COMMENT_LIMIT, budget - len(head)))
        body = safe_text(comment.text, room) if comment.text.strip() else "*(no text)*"
        blocks.append(head + body)
    return fit_lines(header, blocks, "…{left} more on this page not shown.")


def format_stats(stats: GuildStats) -> str:
    lines = [
        "**Archive statistics**",
        f"{plural(stats.posts, 'post')} · {plural(stats.comments, 'comment')} · "
        f"{plural(stats.participants, 'participant')}",
    ]
    lines.append(f"\n**Most discussed since {timestamp(stats.since, 'D')}**")
    if stats.most_discussed:
        lines.extend(
            f"{index}. **{safe_text(item.post.title, 90)}** · {plural(item.comments_in_period, 'comment')}"
            + (" · " + link("discussion", thread_url(item.post.guild_id, item.post.thread_id))
               if item.post.thread_id is not None else "")
            for index, item in enumerate(stats.most_discussed, 1))
    else:
        lines.append("No comments this month yet.")
    lines.append(f"\n**Most active commenters since {timestamp(stats.since, 'D')}**")
    if stats.top_commenters:
        lines.extend(f"{index}. {safe_text(person.name, 60)} · {plural(person.count, 'comment')}"
                     for index, person in enumerate(stats.top_commenters, 1))
    else:
        lines.append("Nobody has commented this month yet.")
    return cut_at_word("\n".join(lines), MESSAGE_LIMIT)
