"""embed.js in a real browser: headless Chromium (Debian's package) driven by Playwright.

A blog page served by its own aiohttp server on 127.0.0.1 embeds the widget from the bot's web
server (another port, so the API call is cross-origin and needs CORS). Hostile comments must run
nothing: the page sets traps (``window.__pwned``, ``alert``) and the test hovers and clicks around.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bot.config import Settings
from bot.storage.db import Database
from bot.web import DiscordStatus, WebServer
from tests.web_support import (
    HOSTILE_COMMENTS,
    BlogPage,
    add_attachment,
    add_comment,
    add_post,
    add_reaction,
    next_id,
)

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
POST_URL = "https://blog.example.com/2026/10/a-post/"
LONG_POST_URL = "https://blog.example.com/2026/10/a-long-post/"
AVATAR = "https://cdn.discordapp.com/avatars/902/ben.png"
# A 1x1 PNG served in place of Discord's CDN (tests never leave 127.0.0.1).
PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                      "0000000d49444154789c6360f8cfc0f01f0005000201a2dd64a00000000049454e44ae426082")
SCREENSHOT = Path(os.environ.get("WEB_SCREENSHOT", "/tmp/conversation-engine-embed.png"))

BLOG_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>A blog post</title>
<script>
  window.__pwned = undefined;
  window.alert = function (text) { window.__pwned = "alert:" + text; };
</script>
<style>body { font-family: Georgia, serif; max-width: 44rem; margin: 2rem auto; }</style>
</head><body>
<h1>A post about conversations</h1>
<p>The post's text.</p>
<div id="spacer" style="height: 3000px"></div>
<h2>Comments</h2>
<script src="{api}/embed.js" data-url="{post_url}" async></script>
<div id="second"><script src="{api}/embed.js" data-url="{post_url}" data-theme="light"
  data-avatars="discord" async></script></div>
</body></html>
"""


def _browser_available() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not Path(CHROMIUM).exists():
        return f"no Chromium binary at {CHROMIUM} (apt-get install chromium)"
    return None


async def seed(database: Database) -> dict[str, int]:
    thread = next_id()
    post = await add_post(database, POST_URL, "A post about conversations", thread_id=thread)
    first = await add_comment(database, post, "What a **great** post, thanks!\n> quoting the post\n||spoiler||",
                              author_name="Ann", author_id=901, thread_id=thread, minutes=1,
                              avatar="javascript:window.__pwned='avatar'")
    reply = await add_comment(database, post, "I agree with <@901>", author_name="Ben", author_id=902,
                              thread_id=thread, minutes=2, reply_to=first, avatar=AVATAR)
    await add_comment(database, post, "And a reply to Ben", author_name="Cat", author_id=903, thread_id=thread,
                      minutes=3, reply_to=reply, edited=True)
    await add_reaction(database, first, "❤️", 4)
    await add_attachment(database, first, "diagram.png", "https://cdn.discordapp.com/attachments/1/2/diagram.png")
    await add_attachment(database, first, "evil.html", "javascript:window.__pwned='attachment'",
                         content_type="text/html")
    await add_comment(database, post, "old comment", author_name="Gone", author_id=904, thread_id=thread,
                      minutes=4, deleted=True)
    for minute, text in enumerate(HOSTILE_COMMENTS, start=10):
        await add_comment(database, post, text, author_name="<img src=x onerror=\"window.__pwned='name'\">",
                          author_id=950 + minute, thread_id=thread, minutes=minute,
                          extras=[{"kind": "embed", "name": "<b>evil</b>",
                                   "url": "javascript:window.__pwned='extra'"}])
    return {"post": post, "first": first, "reply": reply}


async def test_embed_renders_nested_comments_and_runs_no_user_code(database: Database) -> None:
    reason = _browser_available()
    if reason:
        pytest.skip(f"browser test skipped: {reason}")
    from playwright.async_api import async_playwright

    await seed(database)
    long_post = await add_post(database, LONG_POST_URL, "A long one", thread_id=next_id())
    for index in range(205):
        await add_comment(database, long_post, f"long comment {index}", minutes=index)
    blog = BlogPage("/post")
    await blog.start()
    blog_port, blog_origin = blog.port, blog.origin

    settings = Settings(discord_token="", web_port=1, web_host="127.0.0.1", web_allowed_origins=(blog_origin,),
                        discord_invite_url="https://discord.gg/example")
    server = WebServer(database, settings, lambda: DiscordStatus(connected=True), port=0)
    await server.start()
    api = f"http://127.0.0.1:{server.port}"
    blog.html = BLOG_PAGE.replace("{api}", api).replace("{post_url}", POST_URL)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(viewport={"width": 900, "height": 800},
                                                    color_scheme="light")
                page = await context.new_page()
                await page.route("https://cdn.discordapp.com/**", lambda route: route.fulfill(
                    status=200, content_type="image/png", body=PIXEL))
                requested: list[str] = []
                page.on("request", lambda request: requested.append(request.url))
                dialogs: list[str] = []
                page.on("dialog", lambda dialog: dialogs.append(dialog.message))
                await page.goto(f"{blog_origin}/post")
                await page.wait_for_timeout(300)
                # Lazy: nothing is fetched while the widget is far below the fold.
                assert not [url for url in requested if "/api/v1/discussion" in url]
                await page.evaluate("document.getElementById('spacer').scrollIntoView({block: 'end'})")
                await page.wait_for_function(
                    "document.querySelectorAll('.conversation-engine-comments[data-state=loaded]').length === 2",
                    timeout=10_000)

                widget = page.locator(".conversation-engine-comments").first
                tops = widget.locator("ol.ce-list > li.ce-comment")
                assert await tops.count() == 2 + len(HOSTILE_COMMENTS)
                first = tops.nth(0)
                assert await first.locator(".ce-author").first.inner_text() == "Ann"
                replies = first.locator("ol.ce-replies > li.ce-comment")
                assert await replies.count() == 2
                assert await replies.nth(0).locator(".ce-author").inner_text() == "Ben"
                assert "@Ann" in await replies.nth(0).locator(".ce-body").inner_text()
                assert "replying to Ben" in await replies.nth(1).inner_text()
                assert "(edited)" in await replies.nth(1).inner_text()
                assert await first.locator(".ce-body strong").inner_text() == "great"
                assert await first.locator(".ce-body blockquote").count() == 1
                assert "❤️ 4" in await first.locator(".ce-reactions").inner_text()
                assert await first.locator("a[href='https://cdn.discordapp.com/attachments/1/2/diagram.png']").count() == 1
                assert await tops.nth(1).locator(".ce-deleted").inner_text() == "Deleted comment"
                assert await widget.locator(".ce-count").inner_text() == f"{3 + len(HOSTILE_COMMENTS)} comments"
                join = widget.locator("a.ce-button")
                assert await join.inner_text() == "Join the discussion on Discord"
                assert (await join.get_attribute("href") or "").startswith("https://discord.com/channels/")
                assert await widget.locator("a.ce-invite").get_attribute("href") == "https://discord.gg/example"

                # Hostile content is shown as text and runs nothing.
                text = await widget.locator("section.ce").inner_text()
                assert "<script>window.__pwned = 'script'</script> plain script tag" in text
                assert "<img src=x onerror=\"window.__pwned = 'img'\"> image with onerror" in text
                assert "<img src=x onerror=\"window.__pwned='name'\">" in text  # the author name
                assert await widget.locator("script, img[src=x], svg, iframe").count() == 0
                hrefs = await widget.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
                assert hrefs and all(href.startswith(("https://", "http://", "mailto:")) for href in hrefs)
                assert await widget.locator("[onerror], [onload], [onmouseover], [onclick]").count() == 0
                # Initials by default (no request to Discord's CDN); the javascript: avatar is refused even
                # where avatars are switched on, the https one is shown there.
                assert await widget.locator(".ce-avatar img").count() == 0
                assert await widget.locator(".ce-avatar").first.inner_text() == "A"
                opted_in = page.locator("#second .conversation-engine-comments")
                assert await opted_in.locator(".ce-avatar img").evaluate_all(
                    "images => images.map(img => img.getAttribute('src'))") == [AVATAR]
                for spoiler in await widget.locator(".spoiler").all():
                    await spoiler.click()
                for comment in await widget.locator("li.ce-comment").all():
                    await comment.hover()
                await page.wait_for_timeout(300)
                assert await page.evaluate("window.__pwned") is None
                assert dialogs == []
                assert await widget.locator(".spoiler.ce-shown").count() >= 1

                # No third-party requests: only the blog and the bot's server were contacted.
                # (Discord's CDN only for the widget that asked for avatars.)
                hosts = {url.split("/")[2] for url in requested if url.startswith("http")}
                assert hosts <= {f"127.0.0.1:{blog_port}", f"127.0.0.1:{server.port}", "cdn.discordapp.com"}, hosts
                assert [url for url in requested if "cdn.discordapp.com" in url] == [AVATAR]

                # Themes: prefers-color-scheme, and the data-theme override.
                background = ("el => getComputedStyle(el.shadowRoot.querySelector('.ce')).backgroundColor")
                light = await widget.evaluate(background)
                await page.emulate_media(color_scheme="dark")
                dark = await widget.evaluate(background)
                forced_light = await page.locator("#second .conversation-engine-comments").evaluate(background)
                assert light == "rgb(255, 255, 255)"
                assert dark != light
                assert forced_light == light
                await widget.scroll_into_view_if_needed()
                await page.emulate_media(color_scheme="light")
                await widget.screenshot(path=str(SCREENSHOT))

                # A long discussion comes in pages: the rest loads when the reader asks.
                blog.html = (BLOG_PAGE.replace("{api}", api).replace("{post_url}", LONG_POST_URL)
                                     .replace('style="height: 3000px"', 'style="height: 10px"'))
                await page.goto(f"{blog_origin}/post")
                long_widget = page.locator(".conversation-engine-comments").first
                await page.wait_for_function(
                    "document.querySelector('.conversation-engine-comments[data-state=loaded]') !== null",
                    timeout=10_000)
                long_tops = long_widget.locator("ol.ce-list > li.ce-comment")
                assert await long_tops.count() == 200
                await long_widget.locator("button.ce-more").click()
                await page.wait_for_function(
                    "document.querySelector('.conversation-engine-comments').shadowRoot"
                    ".querySelectorAll('ol.ce-list > li.ce-comment').length === 205", timeout=10_000)
                assert await long_widget.locator("button.ce-more").count() == 0
                assert await long_tops.nth(204).locator(".ce-body").inner_text() == "long comment 204"
            finally:
                await browser.close()
    finally:
        await server.stop()
        await blog.stop()


LISTING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Posts</title>
<script>window.__pwned = undefined;</script></head><body>
<ul>
<li><a href="{post_url}">A post</a> <span class="n" data-conversation-count="{post_url}">…</span></li>
<li><a href="{other_url}">Another</a> <span class="n" data-conversation-count="{other_url}">…</span></li>
<li>Again <span class="n" data-conversation-count="{post_url}">…</span></li>
</ul>
<script src="{api}/counts.js" async></script>
<script src="{api}/embed.js" data-url="{post_url}" async></script>
</body></html>
"""


async def test_counts_script_fills_listing_pages_with_one_request(database: Database) -> None:
    reason = _browser_available()
    if reason:
        pytest.skip(f"browser test skipped: {reason}")
    from playwright.async_api import async_playwright

    ids = await seed(database)
    other_url = "https://blog.example.com/2026/10/another/"
    other = await add_post(database, other_url, "Another", thread_id=(thread := next_id()))
    await add_comment(database, other, "<b>not markup</b>", thread_id=thread)
    await add_reaction(database, ids["reply"], "👍", 9)
    await add_reaction(database, ids["reply"], "<img src=x onerror=\"window.__pwned='emoji'\">", 1)
    blog = BlogPage("/")
    await blog.start()
    blog_origin = blog.origin
    settings = Settings(discord_token="", web_port=1, web_host="127.0.0.1", web_allowed_origins=(blog_origin,))
    server = WebServer(database, settings, lambda: DiscordStatus(connected=True), port=0)
    await server.start()
    api = f"http://127.0.0.1:{server.port}"
    blog.html = (LISTING_PAGE.replace("{api}", api).replace("{post_url}", POST_URL)
                         .replace("{other_url}", other_url))
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                requested: list[str] = []
                page.on("request", lambda request: requested.append(request.url))
                await page.goto(f"{blog_origin}/")
                await page.wait_for_function(
                    "document.querySelectorAll('[data-conversation-count][data-state=loaded]').length === 3",
                    timeout=10_000)
                texts = await page.locator("span.n").all_inner_texts()
                comments = 3 + len(HOSTILE_COMMENTS)
                hostile = "<img src=x onerror=\"window.__pwned='emoji'\"> 1"
                assert texts[0] == f"{comments} comments · 👍 9 ❤️ 4 {hostile}"
                assert texts[1] == "1 comment"
                assert texts[2] == texts[0]
                assert len([url for url in requested if "/api/v1/counts" in url]) == 1
                # The widget shows the same summary above the comments.
                await page.wait_for_function(
                    "document.querySelector('.conversation-engine-comments[data-state=loaded]') !== null",
                    timeout=10_000)
                summary = page.locator(".conversation-engine-comments .ce-summary")
                assert await summary.inner_text() == f"👍 9\n❤️ 4\n{hostile}"
                assert await page.locator("img[src=x]").count() == 0
                assert await page.evaluate("window.__pwned") is None
            finally:
                await browser.close()
    finally:
        await server.stop()
        await blog.stop()
