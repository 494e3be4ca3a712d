"""Write _data/conversation.json ({post URL: comments as HTML}) for the Jekyll include.

Usage: python3 fetch_comments.py https://comments.example.com https://blog.example.com/a/ [...]
(pass the post URLs, e.g. from your sitemap). Standard library only.
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path


def main(server: str, urls: list[str]) -> None:
    fragments = {}
    for url in urls:
        query = urllib.parse.urlencode({"url": url, "format": "html"})
        try:
            with urllib.request.urlopen(f"{server.rstrip('/')}/api/v1/discussion?{query}", timeout=30) as answer:
                fragments[url] = answer.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            if error.code != 404:  # 404: no discussion for this post (yet)
                raise
    target = Path("_data/conversation.json")
    target.parent.mkdir(exist_ok=True)
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(fragments, ensure_ascii=False), encoding="utf-8")
    temporary.replace(target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
