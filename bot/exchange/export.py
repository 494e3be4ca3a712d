"""Export posts and their comments: our own JSON, or WordPress WXR 1.2 for WordPress's importer.

Opted-out users' comments are never exported. Hidden comments are exported as not approved
(WordPress keeps them pending) and deleted ones as trashed tombstones so replies keep their parent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from bot import __version__
from bot.storage import blog
from bot.storage.blog import BlogComment, BlogPost
from bot.storage.db import Database
from bot.web.discussion import render_comments

EXPORT_FORMAT = "conversation-engine-export"
EXPORT_VERSION = 1
WXR_VERSION = "1.2"
# XML 1.0 forbids most control characters, even escaped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class ExportedComment:
    comment: BlogComment
    html: str


@dataclass(frozen=True, slots=True)
class ExportedPost:
    post: BlogPost
    comments: tuple[ExportedComment, ...]


async def collect_export(database: Database, posts: Sequence[BlogPost],
                         on_post: Callable[[int], None] | None = None) -> list[ExportedPost]:
    """Each post with its comments (hidden ones included, opted-out ones never) rendered to HTML."""
    exported: list[ExportedPost] = []
    for index, post in enumerate(posts, start=1):
        comments = await blog.discussion_comments(database, post.id, include_hidden=True)
        rendered = await render_comments(database, comments)
        exported.append(ExportedPost(post=post, comments=tuple(
            ExportedComment(comment=comment, html=rendered[comment.message_id]) for comment in comments)))
        if on_post is not None:
            on_post(index)
    return exported


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# JSON


def export_json(posts: Sequence[ExportedPost], *, exported_at: datetime) -> str:
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "generator": f"conversation-engine {__version__}",
        "exported_at": _iso(exported_at),
        "posts": [_post_json(item) for item in posts],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _post_json(item: ExportedPost) -> dict[str, Any]:
    post = item.post
    return {
        "id": post.id,
        "guild_id": str(post.guild_id),
        "url": post.canonical_url,
        "guid": post.guid,
        "title": post.title,
        "author": post.author,
        "published_at": _iso(post.published_at),
        "thread": None if post.thread_id is None else {"id": str(post.thread_id), "url": post.thread_url},
        "comments": [_comment_json(exported) for exported in item.comments],
    }


def _comment_json(item: ExportedComment) -> dict[str, Any]:
    comment = item.comment
    return {
        "id": str(comment.message_id),
        "reply_to": None if comment.reply_to is None else str(comment.reply_to),
        "origin": comment.origin,
        "origin_key": comment.origin_key,
        "author": {"id": None if comment.author_id is None else str(comment.author_id),
                   "name": comment.author_name, "avatar_url": comment.author_avatar_url, "bot": comment.is_bot},
        "created_at": _iso(comment.created_at),
        "edited_at": _iso(comment.edited_at),
        "deleted": comment.deleted,
        "hidden": comment.hidden,
        "content": comment.content,
        "html": item.html,
        "attachments": [{"filename": a.filename, "url": a.url, "size": a.size, "content_type": a.content_type}
                        for a in comment.attachments],
        "reactions": [{"emoji": r.emoji, "count": r.count} for r in comment.reactions],
        "links": [{"kind": link.kind, "name": link.name, "url": link.url} for link in comment.links],
    }


# ---------------------------------------------------------------------------------------------
# WXR


def _xml_text(text: str) -> str:
    cleaned = _XML_ILLEGAL.sub("", text)
    return cleaned.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cdata(text: str) -> str:
    cleaned = _XML_ILLEGAL.sub("", text)
    return "<![CDATA[" + cleaned.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _wp_date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def wxr_comment_id(message_id: int) -> int:
    """WordPress comment ids are positive: Discord snowflakes are, imported comments' ids are not."""
    return message_id if message_id > 0 else -message_id


def _slug(url: str) -> str:
    path = unquote(urlsplit(url).path).strip("/")
    last = path.rsplit("/", 1)[-1] if path else ""
    slug = re.sub(r"[^a-z0-9-]+", "-", last.lower()).strip("-")
    return slug[:190]


def _author_login(name: str) -> str:
    login = re.sub(r"[^A-Za-z0-9_.@-]+", "", name.replace(" ", "_"))[:60]
    return login or "author"


def _comment_xml(item: ExportedComment, exported_ids: set[int]) -> str:
    comment = item.comment
    if comment.deleted:
        approved = "trash"
    elif comment.hidden:
        approved = "0"
    else:
        approved = "1"
    parent = 0
    if comment.reply_to is not None and comment.reply_to in exported_ids:
        parent = wxr_comment_id(comment.reply_to)
    date = _wp_date(comment.created_at)
    author = "" if comment.deleted else comment.author_name
    meta = ""
    if comment.origin == "discord":
        meta = ("\t\t\t<wp:commentmeta>\n\t\t\t\t<wp:meta_key>" + _cdata("discord_message_id")
                + "</wp:meta_key>\n\t\t\t\t<wp:meta_value>" + _cdata(str(comment.message_id))
                + "</wp:meta_value>\n\t\t\t</wp:commentmeta>\n")
    return (
        "\t\t<wp:comment>\n"
        f"\t\t\t<wp:comment_id>{wxr_comment_id(comment.message_id)}</wp:comment_id>\n"
        f"\t\t\t<wp:comment_author>{_cdata(author)}</wp:comment_author>\n"
        f"\t\t\t<wp:comment_author_email>{_cdata('')}</wp:comment_author_email>\n"
        "\t\t\t<wp:comment_author_url></wp:comment_author_url>\n"
        "\t\t\t<wp:comment_author_IP></wp:comment_author_IP>\n"
        f"\t\t\t<wp:comment_date>{_cdata(date)}</wp:comment_date>\n"
        f"\t\t\t<wp:comment_date_gmt>{_cdata(date)}</wp:comment_date_gmt>\n"
        f"\t\t\t<wp:comment_content>{_cdata(item.html)}</wp:comment_content>\n"
        f"\t\t\t<wp:comment_approved>{_cdata(approved)}</wp:comment_approved>\n"
        f"\t\t\t<wp:comment_type>{_cdata('comment')}</wp:comment_type>\n"
        f"\t\t\t<wp:comment_parent>{parent}</wp:comment_parent>\n"
        "\t\t\t<wp:comment_user_id>0</wp:comment_user_id>\n"
        f"{meta}"
        "\t\t</wp:comment>\n"
    )


def _item_xml(item: ExportedPost) -> str:
    post = item.post
    exported_ids = {exported.comment.message_id for exported in item.comments}
    date = _wp_date(post.published_at)
    creator = _author_login(post.author or "author")
    comments = "".join(_comment_xml(exported, exported_ids) for exported in item.comments)
    return (
        "\t<item>\n"
        f"\t\t<title>{_cdata(post.title)}</title>\n"
        f"\t\t<link>{_xml_text(post.canonical_url)}</link>\n"
        f"\t\t<pubDate>{_xml_text(format_datetime(post.published_at, usegmt=True))}</pubDate>\n"
        f"\t\t<dc:creator>{_cdata(creator)}</dc:creator>\n"
        f"\t\t<guid isPermaLink=\"false\">{_xml_text(post.guid or post.canonical_url)}</guid>\n"
        "\t\t<description></description>\n"
        f"\t\t<content:encoded>{_cdata('')}</content:encoded>\n"
        f"\t\t<excerpt:encoded>{_cdata(post.summary)}</excerpt:encoded>\n"
        f"\t\t<wp:post_id>{post.id}</wp:post_id>\n"
        f"\t\t<wp:post_date>{_cdata(date)}</wp:post_date>\n"
        f"\t\t<wp:post_date_gmt>{_cdata(date)}</wp:post_date_gmt>\n"
        f"\t\t<wp:comment_status>{_cdata('open')}</wp:comment_status>\n"
        f"\t\t<wp:ping_status>{_cdata('closed')}</wp:ping_status>\n"
        f"\t\t<wp:post_name>{_cdata(_slug(post.canonical_url))}</wp:post_name>\n"
        # A draft: the export carries the discussion, not the post's text. WordPress attaches the
        # comments to the existing post when title and date match, and otherwise makes a draft.
        f"\t\t<wp:status>{_cdata('draft')}</wp:status>\n"
        "\t\t<wp:post_parent>0</wp:post_parent>\n"
        "\t\t<wp:menu_order>0</wp:menu_order>\n"
        f"\t\t<wp:post_type>{_cdata('post')}</wp:post_type>\n"
        f"\t\t<wp:post_password>{_cdata('')}</wp:post_password>\n"
        "\t\t<wp:is_sticky>0</wp:is_sticky>\n"
        f"{comments}"
        "\t</item>\n"
    )


def export_wxr(posts: Sequence[ExportedPost], *, exported_at: datetime, site_url: str | None = None) -> str:
    """WXR 1.2 (the format of WordPress's Tools > Export) with one ``wp:comment`` per comment."""
    if site_url is None and posts:
        parts = urlsplit(posts[0].post.canonical_url)
        site_url = f"{parts.scheme}://{parts.netloc}"
    site_url = site_url or "https://example.invalid"
    authors = sorted({post.post.author or "author" for post in posts})
    author_xml = "".join(
        "\t<wp:author>\n"
        f"\t\t<wp:author_id>{index}</wp:author_id>\n"
        f"\t\t<wp:author_login>{_cdata(_author_login(name))}</wp:author_login>\n"
        f"\t\t<wp:author_email>{_cdata('')}</wp:author_email>\n"
        f"\t\t<wp:author_display_name>{_cdata(name)}</wp:author_display_name>\n"
        f"\t\t<wp:author_first_name>{_cdata('')}</wp:author_first_name>\n"
        f"\t\t<wp:author_last_name>{_cdata('')}</wp:author_last_name>\n"
        "\t</wp:author>\n"
        for index, name in enumerate(authors, start=1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        f"<!-- generator=\"conversation-engine/{__version__}\" created=\"{_wp_date(exported_at)}\" -->\n"
        '<rss version="2.0"\n'
        '\txmlns:excerpt="http://wordpress.org/export/1.2/excerpt/"\n'
        '\txmlns:content="http://purl.org/rss/1.0/modules/content/"\n'
        '\txmlns:wfw="http://wellformedweb.org/CommentAPI/"\n'
        '\txmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '\txmlns:wp="http://wordpress.org/export/1.2/"\n'
        ">\n\n<channel>\n"
        "\t<title>Comments from Discord</title>\n"
        f"\t<link>{_xml_text(site_url)}</link>\n"
        "\t<description>Blog comments exported by conversation-engine</description>\n"
        f"\t<pubDate>{_xml_text(format_datetime(exported_at, usegmt=True))}</pubDate>\n"
        "\t<language>en</language>\n"
        f"\t<wp:wxr_version>{WXR_VERSION}</wp:wxr_version>\n"
        f"\t<wp:base_site_url>{_xml_text(site_url)}</wp:base_site_url>\n"
        f"\t<wp:base_blog_url>{_xml_text(site_url)}</wp:base_blog_url>\n\n"
        f"{author_xml}\n"
        f"\t<generator>https://github.com/conversation-engine/conversation-engine?v={__version__}</generator>\n\n"
        + "".join(_item_xml(item) for item in posts)
        + "</channel>\n</rss>\n"
    )
