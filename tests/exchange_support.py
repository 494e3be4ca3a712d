"""Generated WordPress exports for the import tests: as large as asked, with posts to match them."""

from __future__ import annotations

from pathlib import Path

BLOG = "https://big.example.com"
_REPOSITORY = Path(__file__).resolve().parents[1]
_HEAD = ('<?xml version="1.0" encoding="UTF-8" ?>\n'
         '<rss version="2.0" xmlns:wp="http://wordpress.org/export/1.2/" '
         'xmlns:content="http://purl.org/rss/1.0/modules/content/">\n<channel>\n<title>Big blog</title>\n')
# Plain paragraphs (what most comments are); HTML converts many times slower and would only make tests slow.
_SENTENCE = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt. "
COMMENT_BODY = "\n\n".join([_SENTENCE * 4] * 5)
_POST_BODY = "<p>" + _SENTENCE * 40 + "</p>\n"


def corpus_exports() -> Path | None:
    """The real exports of the shared corpus: next to the repository (/work/main) or next to the
    folder of worktrees (/work/wt/NAME); None when absent."""
    for base in (_REPOSITORY.parent, _REPOSITORY.parent.parent):
        folder = base / "shared" / "corpus" / "exports"
        if folder.is_dir():
            return folder
    return None


def post_url(item: int) -> str:
    return f"{BLOG}/{item}/"


def wxr_comment(comment_id: int, parent: int = 0, *, date: str = "2020-05-01 10:00:00",
                body: str = COMMENT_BODY) -> str:
    return (f"<wp:comment><wp:comment_id>{comment_id}</wp:comment_id>"
            f"<wp:comment_author><![CDATA[Reader {comment_id}]]></wp:comment_author>"
            f"<wp:comment_date_gmt>{date}</wp:comment_date_gmt>"
            f"<wp:comment_content><![CDATA[{body} #{comment_id}]]></wp:comment_content>"
            f"<wp:comment_approved>1</wp:comment_approved><wp:comment_parent>{parent}</wp:comment_parent>"
            "</wp:comment>\n")


def wxr_item(item: int, comments: list[str], *, post_paragraphs: int = 0) -> str:
    return (f"<item><title>Post {item}</title><link>{post_url(item)}</link>"
            f"<guid isPermaLink=\"false\">{BLOG}/?p={item}</guid>\n"
            f"<content:encoded><![CDATA[{_POST_BODY * post_paragraphs}]]></content:encoded>\n"
            + "".join(comments) + "</item>\n")


def write_wxr(path: Path, *, items: int, comments_per_item: int, post_paragraphs: int = 0,
              last_item_comments: int = 0, last_comment: str | None = None) -> int:
    """A WXR of ``items`` posts with ``comments_per_item`` comments each (every other one a reply),
    the last item with ``last_item_comments`` more, then ``last_comment`` (raw XML) if given.
    Returns the number of well-formed comments written."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(_HEAD)
        for item in range(1, items + 1):
            count = comments_per_item + (last_item_comments if item == items else 0)
            comments = [wxr_comment(item * 1_000_000 + index + 1, item * 1_000_000 + index if index % 2 else 0)
                        for index in range(count)]
            written += len(comments)
            if item == items and last_comment is not None:
                comments.append(last_comment)
            out.write(wxr_item(item, comments, post_paragraphs=post_paragraphs))
        out.write("</channel>\n</rss>\n")
    return written


def write_wxr_of_size(path: Path, megabytes: float) -> tuple[int, int]:
    """A WXR of about ``megabytes`` MB, shaped like a real blog's export: posts' text and a few
    comments each, one post with a long discussion (a tenth of the comments). (items, comments)."""
    comments_per_item, post_paragraphs = 4, 6
    item_bytes = len(wxr_item(1, [wxr_comment(1_000_001)] * comments_per_item,
                              post_paragraphs=post_paragraphs).encode())
    items = max(1, int(megabytes * 1_000_000 / item_bytes * 0.98))
    return items, write_wxr(path, items=items, comments_per_item=comments_per_item,
                            post_paragraphs=post_paragraphs, last_item_comments=items * comments_per_item // 9)
