"""The server-rendered discussion page (``/p/{post_id}``) for blogs that prefer a link.

Every value is escaped with :func:`html.escape`; the only markup from users is the comment HTML
that :func:`bot.render.discord_to_html.discord_markdown_to_html` produced (sanitised by nh3 with
an allow-list). The page runs no script at all, which the CSP header enforces.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from bot.web.discussion import Discussion, ThreadedComment, reaction_json, safe_url
from bot.web.indexing import discussion_json_ld, json_ld_script

_STYLE = """
:root { color-scheme: light dark; --bg: #fff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --card: #f6f8fa; --accent: #5865f2; --accent-fg: #fff; }
@media (prefers-color-scheme: dark) { :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1;
  --line: #3d444d; --card: #151b23; --accent: #5865f2; --accent-fg: #fff; } }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 46rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; overflow-wrap: anywhere; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 0 0 .25rem; }
a { color: var(--accent); }
.meta, .when, .edited { color: var(--muted); font-size: .875rem; }
.actions { display: flex; gap: .75rem; flex-wrap: wrap; margin: 1rem 0 1.5rem; }
.button { background: var(--accent); color: var(--accent-fg); padding: .5rem .9rem; border-radius: .4rem;
  text-decoration: none; font-weight: 600; }
ol.comments, ol.replies { list-style: none; margin: 0; padding: 0; }
ol.replies { margin: .75rem 0 0 1.25rem; padding-left: .75rem; border-left: 2px solid var(--line); }
li.comment { background: var(--card); border: 1px solid var(--line); border-radius: .5rem;
  padding: .75rem 1rem; margin-bottom: .75rem; }
ol.replies li.comment { background: transparent; border: 0; padding: .25rem 0; }
.head { display: flex; align-items: center; gap: .5rem; flex-wrap: wrap; }
.avatar { width: 28px; height: 28px; border-radius: 50%; background: var(--line); color: var(--muted);
  display: inline-flex; align-items: center; justify-content: center; font-size: .8rem; font-weight: 700; }
.author { font-weight: 600; }
.deleted { color: var(--muted); font-style: italic; }
.body pre { overflow-x: auto; background: var(--bg); padding: .5rem; border-radius: .3rem; }
.body blockquote { margin: .25rem 0; padding-left: .75rem; border-left: 3px solid var(--line); }
.spoiler { background: var(--fg); color: transparent; border-radius: .2rem; }
.spoiler:hover { background: transparent; color: inherit; }
.mention { background: rgba(88,101,242,.15); border-radius: .2rem; padding: 0 .15rem; }
.reactions { display: flex; gap: .4rem; flex-wrap: wrap; margin-top: .4rem; padding: 0; list-style: none; }
.reactions li { border: 1px solid var(--line); border-radius: 1rem; padding: 0 .5rem; font-size: .875rem; }
.files { margin: .4rem 0 0; padding-left: 1.2rem; font-size: .875rem; }
"""


def _time(moment: datetime) -> str:
    iso = moment.isoformat().replace("+00:00", "Z")
    return f'<time class="when" datetime="{escape(iso)}">{escape(moment.strftime("%Y-%m-%d %H:%M UTC"))}</time>'


def _initials(name: str) -> str:
    return "".join(part[0] for part in name.split()[:2]).upper() or "?"


def _comment(item: ThreadedComment) -> str:
    comment = item.comment
    parts = [f'<li class="comment" id="c{comment.message_id}">']
    if comment.deleted:
        parts.append(f'<div class="head"><span class="deleted">deleted comment</span> {_time(comment.created_at)}'
                     "</div>")
    else:
        # Initials instead of Discord's CDN: the page makes no third-party request.
        avatar = f'<span class="avatar" aria-hidden="true">{escape(_initials(comment.author_name))}</span>'
        edited = ' <span class="edited">(edited)</span>' if comment.edited_at else ""
        if comment.origin != "discord":
            edited += ' <span class="meta">· archived comment</span>'
        answering = f' <span class="meta">replying to {escape(item.reply_to_name)}</span>' if item.reply_to_name \
            else ""
        if item.reply_to_removed:
            answering = ' <span class="meta">replying to a removed comment</span>'
        parts.append(f'<div class="head">{avatar}<span class="author">{escape(comment.author_name)}</span> '
                     f"{_time(comment.created_at)}{edited}{answering}</div>")
        parts.append(f'<div class="body">{item.html}</div>')  # sanitised by the renderer (nh3)
        if comment.attachments:
            parts.append('<ul class="files">')
            for attachment in comment.attachments:
                if safe_url(attachment.url):
                    parts.append(f'<li><a href="{escape(attachment.url)}" rel="nofollow ugc noopener">'
                                 f"{escape(attachment.filename)}</a></li>")
                else:
                    parts.append(f"<li>{escape(attachment.filename)}</li>")
            parts.append("</ul>")
        if comment.reactions:
            parts.append('<ul class="reactions">')
            for reaction in comment.reactions:
                shown = reaction_json(reaction.emoji, reaction.count)
                parts.append(f"<li>{escape(shown['emoji'])} {reaction.count}</li>")
            parts.append("</ul>")
    if item.replies:
        parts.append('<ol class="replies">')
        parts.extend(_comment(reply) for reply in item.replies)
        parts.append("</ol>")
    parts.append("</li>")
    return "".join(parts)


def render_discussion_page(discussion: Discussion, *, invite_url: str | None) -> str:
    post = discussion.post
    actions: list[str] = []
    if post.thread_url:
        actions.append(f'<a class="button" href="{escape(post.thread_url)}" rel="noopener">'
                       "Join the discussion on Discord</a>")
    if invite_url:
        actions.append(f'<a href="{escape(invite_url)}" rel="noopener">Not on the server yet? Join it</a>')
    link = (f'<a href="{escape(post.canonical_url)}" rel="noopener">Read the post</a>'
            if safe_url(post.canonical_url) else "")
    count = discussion.comment_count
    comments = (f'<ol class="comments">{"".join(_comment(item) for item in discussion.comments)}</ol>'
                if discussion.comments else '<p class="meta">No comments yet.</p>')
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>Discussion: {escape(post.title)}</title>"
        f'<link rel="alternate" type="application/atom+xml" title="Comments: {escape(post.title)}" '
        f'href="/feeds/p/{post.id}.atom">'
        f"{json_ld_script(discussion_json_ld(discussion, page_path=f'/p/{post.id}'))}"
        f"<style>{_STYLE}</style></head><body><main>"
        f"<h1>{escape(post.title)}</h1>"
        f'<p class="meta">{escape(post.author or "")}{" · " if post.author else ""}{_time(post.published_at)}'
        f" · {link}</p>"
        f'<div class="actions">{"".join(actions)}</div>'
        f'<h2>{count} comment{"" if count == 1 else "s"}</h2>'
        f"{comments}"
        "</main></body></html>\n"
    )


def render_discussion_fragment(discussion: Discussion) -> str:
    """The comments alone, for a static-site generator to paste into a post at build time: markup
    and classes only (the page's class scheme), no script, no style attribute."""
    count = discussion.comment_count
    comments = (f'<ol class="comments">{"".join(_comment(item) for item in discussion.comments)}</ol>'
                if discussion.comments else '<p class="meta">No comments yet.</p>')
    return (f'<section class="conversation-engine" data-post-id="{discussion.post.id}">'
            f'<h2>{count} comment{"" if count == 1 else "s"}</h2>{comments}</section>\n')


def render_not_found_page() -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title></head>"
        "<body><p>This discussion does not exist (or not any more).</p></body></html>\n"
    )
