"""Generated WordPress exports for the import tests: as large as asked, with posts to match them."""

from __future__ import annotations

from pathlib import Path

BLOG = "https://big.example.com"
_REPOSITORY = Path(__file__).resolve().parents[1]


def corpus_exports() -> Path | None:
    """The real exports of the shared corpus: next to the repository (/work/main) or next to the
    folder of worktrees (/work/wt/NAME); None when absent."""
    for base in (_REPOSITORY.parent, _REPOSITORY.parent.parent):
        folder = base / "shared" / "corpus" / "exports"
        if folder.is_dir():
            return folder
    return None
_HEAD = ('<?xml version="1.0" encoding="UTF-8" ?>\n'
         '<rss version="2.0" xmlns:wp="http://wordpress.org/export/1.2/" '
         'xmlns:content="http://purl.org/rss/1.0/modules/content/">\n<channel>\n<title>Big blog</title>\n')
_BODY = ("A comment with <strong>some</strong> markup and <a href=\"https://example.org/x\">a link</a>. "
         "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
         "et dolore magna aliqua.\n\nUt enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut "
         "aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse.")


def post_url(item: int) -> str:
    return f"{BLOG}/{item}/"


def wxr_comment(comment_id: int, parent: int, *, date: str = "2020-05-01 10:00:00", body: str = _BODY) -> str:
    return (f"<wp:comment><wp:comment_id>{comment_id}</wp:comment_id>"
            f"<wp:comment_author><![CDATA[Reader {comment_id}]]></wp:comment_author>"
            f"<wp:comment_date_gmt>{date}</wp:comment_date_gmt>"
            f"<wp:comment_content><![CDATA[{body} #{comment_id}]]></wp:comment_content>"
            f"<wp:comment_approved>1</wp:comment_approved><wp:comment_parent>{parent}</wp:comment_parent>"
            "</wp:comment>\n")


def wxr_item(item: int, comments: list[str]) -> str:
    return (f"<item><title>Post {item}</title><link>{post_url(item)}</link>"
            f"<guid isPermaLink=\"false\">{BLOG}/?p={item}</guid>\n" + "".join(comments) + "</item>\n")


def write_wxr(path: Path, *, items: int, comments_per_item: int, last_item_comment: str | None = None) -> int:
    """A WXR of ``items`` posts with ``comments_per_item`` comments each (every other one a reply);
    ``last_item_comment`` is appended to the last item. Returns the number of comments written."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(_HEAD)
        for item in range(1, items + 1):
            comments = []
            for index in range(comments_per_item):
                comment_id = item * 100_000 + index + 1
                parent = comment_id - 1 if index % 2 else 0
                comments.append(wxr_comment(comment_id, parent))
            written += len(comments)
            if item == items and last_item_comment is not None:
                comments.append(last_item_comment)
            out.write(wxr_item(item, comments))
        out.write("</channel>\n</rss>\n")
    return written


def write_wxr_of_size(path: Path, megabytes: float) -> tuple[int, int]:
    """A WXR of about ``megabytes`` MB: (items, comments)."""
    comments_per_item = 40
    item_bytes = len(wxr_item(1, [wxr_comment(100_001, 0)] * comments_per_item).encode())
    items = max(1, int(megabytes * 1_000_000 / item_bytes))
    return items, write_wxr(path, items=items, comments_per_item=comments_per_item)
