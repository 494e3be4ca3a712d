"""The snippets in integrations/: the WordPress plugin passes ``php -l`` and, with WordPress's few
functions stubbed, renders the widget and list counts; the Hugo partial builds in a tiny site
against the web server on 127.0.0.1; the Jekyll fetch script writes the fragments' data file."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bot.storage.db import Database
from bot.web import DiscordStatus, create_app
from tests.test_web_api import POST_URL, SETTINGS, seed_discussion

ROOT = Path(__file__).resolve().parents[1]
INTEGRATIONS = ROOT / "integrations"
PLUGIN = INTEGRATIONS / "wordpress" / "conversation-engine.php"
HARNESS = Path(__file__).parent / "integrations" / "wordpress_harness.php"


@pytest.fixture
async def server(database: Database) -> AsyncIterator[str]:
    await seed_discussion(database)
    app = create_app(database, SETTINGS, lambda: DiscordStatus(connected=True))
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield f"http://127.0.0.1:{test_server.port}"
    finally:
        await test_server.close()


def need(program: str, how: str) -> str:
    found = shutil.which(program)
    if found is None:
        pytest.skip(f"{program} is not installed ({how})")
    return found


def test_wordpress_plugin_passes_php_lint() -> None:
    php = need("php", "apt-get install php-cli")
    result = subprocess.run([php, "-l", str(PLUGIN)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_wordpress_plugin_renders_widget_and_counts() -> None:
    php = need("php", "apt-get install php-cli")
    result = subprocess.run([php, str(HARNESS), str(PLUGIN), "https://comments.example.com/"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout)
    # Included again as the comments template, the plugin file renders only the widget.
    assert outcome["template_is_plugin"] is True
    assert outcome["widget"] == ('<section id="comments" class="conversation-engine"><script '
                                 'src="https://comments.example.com/embed.js" '
                                 'data-url="https://blog.example.com/a-post/?q=&quot;x&quot;" async></script></section>')
    assert outcome["comments_open"] is False
    assert outcome["singular_number"] == "3 Comments"
    assert outcome["list_number"] == ('<span data-conversation-count="https://blog.example.com/a-post/?q=&quot;x'
                                      '&quot;">3 Comments</span>')
    assert outcome["registered"] == ["https://comments.example.com/counts.js"]
    assert outcome["enqueued"] == ["conversation-engine-counts"]
    assert outcome["refused"] == "" and outcome["settings_errors"] == ["bad-url"]
    assert outcome["kept"] == "https://comments.example.com"


async def test_hugo_partial_builds_with_the_fragment(server: str, tmp_path: Path) -> None:
    hugo = need("hugo", "apt-get install hugo")
    site = tmp_path / "site"
    (site / "content" / "posts").mkdir(parents=True)
    (site / "layouts" / "_default").mkdir(parents=True)
    shutil.copytree(INTEGRATIONS / "hugo" / "layouts" / "partials", site / "layouts" / "partials")
    base = POST_URL.rsplit("/", 2)[0] + "/"  # the post's permalink is the seeded POST_URL
    (site / "config.toml").write_text(
        f'baseURL = "{base}"\ntitle = "t"\ndisableKinds = ["taxonomy", "term", "RSS", "sitemap"]\n'
        f'[params]\nconversationEngine = "{server}/"\n[permalinks]\nposts = "/:slug/"\n', encoding="utf-8")
    slug = POST_URL.rstrip("/").rsplit("/", 1)[1]
    (site / "content" / "posts" / f"{slug}.md").write_text(
        f'---\ntitle: "Hello"\nslug: "{slug}"\n---\nText.\n', encoding="utf-8")
    (site / "layouts" / "_default" / "single.html").write_text(
        '<html><body>{{ .Content }}{{ partial "conversation.html" . }}'
        '{{ partial "conversation-count.html" . }}</body></html>', encoding="utf-8")
    (site / "layouts" / "_default" / "list.html").write_text("<html></html>", encoding="utf-8")
    process = await asyncio.create_subprocess_exec(hugo, "--source", str(site), "--quiet",
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, (out + err).decode()
    [page] = list((site / "public").rglob(f"{slug}/index.html"))
    html = page.read_text(encoding="utf-8")
    assert f'<script src="{server}/embed.js" data-url="{POST_URL}" async></script>' in html
    assert '<section class="conversation-engine"' in html and "<strong>bold</strong>" in html
    assert "HIDDEN TEXT" not in html
    assert f'data-conversation-count="{POST_URL}"' in html


async def test_jekyll_fetch_script_writes_the_fragments(server: str, tmp_path: Path) -> None:
    missing = "https://blog.example.com/not-a-post/"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(INTEGRATIONS / "jekyll" / "fetch_comments.py"), server, POST_URL, missing,
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (out + err).decode()
    fragments = json.loads((tmp_path / "_data" / "conversation.json").read_text(encoding="utf-8"))
    assert list(fragments) == [POST_URL]
    assert fragments[POST_URL].startswith('<section class="conversation-engine"')
    assert "HIDDEN TEXT" not in fragments[POST_URL]
