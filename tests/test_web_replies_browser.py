"""Replying from the blog in a real browser (Chromium through Playwright): sign in with Discord in a
popup (the emulator's authorize page), post, reply, a refusal, sign out."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.storage import Database
from tests.discussions_support import eventually
from tests.fakediscord import FakeDiscord
from tests.fakediscord.harness import World
from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS, _browser_available
from tests.test_web_replies import _thread_locked, site
from tests.web_support import BlogPage

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>A post</title></head><body>
<h1>A post</h1><script src="{api}/embed.js" data-url="{post_url}" async></script></body></html>"""


async def test_sign_in_post_reply_refusal_sign_out(emulator: FakeDiscord, world: World, database: Database,
                                                   tmp_path: Path) -> None:
    reason = _browser_available()
    if reason:
        pytest.skip(f"browser test skipped: {reason}")
    from playwright.async_api import async_playwright

    blog = BlogPage("/post")
    await blog.start()
    blog_origin = blog.origin
    try:
        async with site(emulator, world, database, tmp_path, web_allowed_origins=(blog_origin,)) as s, \
                async_playwright() as playwright:
            blog.html = PAGE.replace("{api}", s.base).replace("{post_url}", s.post_url)
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context()).new_page()
                await page.goto(f"{blog_origin}/post")
                widget = page.locator(".conversation-engine-comments")
                sign_in = widget.get_by_role("button", name="Sign in with Discord to reply")
                await sign_in.wait_for(timeout=10_000)
                # The Discord link stays.
                assert await widget.locator("a.ce-button").inner_text() == "Join the discussion on Discord"

                emulator.approve_oauth(world.alice)
                async with page.expect_popup() as popup_info:
                    await sign_in.click()
                popup = await popup_info.value
                text = widget.get_by_role("textbox", name="Your comment")
                await text.wait_for(timeout=10_000)
                assert "Signed in as Alice" in await widget.locator(".ce-reply").inner_text()
                if not popup.is_closed():  # the popup closes itself once it handed the session over
                    await popup.wait_for_event("close", timeout=10_000)
                stored = await page.evaluate("Object.keys(localStorage)")
                assert [key for key in stored if key.startswith("conversation-engine:session:")]

                await text.fill("Hello from the blog")
                assert await widget.locator("#ce-reply-counter").inner_text() == "19 / 2000"
                await widget.get_by_role("button", name="Post comment").click()
                await widget.get_by_text("Your comment is posted.").wait_for(timeout=10_000)
                mine = widget.locator("ol.ce-list > li.ce-comment").last
                assert await mine.locator(".ce-author").inner_text() == "Alice"
                assert "Hello from the blog" in await mine.locator(".ce-body").inner_text()
                assert [m.content for m in emulator.messages(s.thread) if m.webhook_id] == ["Hello from the blog"]

                # Reply (keyboard: the Reply button focuses the text box).
                await mine.get_by_role("button", name="Reply to Alice").click()
                assert "Replying to Alice" in await widget.locator(".ce-replying").inner_text()
                await page.keyboard.type("And a reply")
                await widget.get_by_role("button", name="Post comment").click()
                await mine.locator("ol.ce-replies > li.ce-comment").wait_for(timeout=10_000)
                assert "And a reply" in await mine.locator("ol.ce-replies .ce-body").inner_text()

                # A refusal says what is wrong.
                emulator.lock_thread(s.thread)
                await eventually(lambda: _thread_locked(database, s.thread.id), what="the lock")
                await text.fill("Anyone?")
                await widget.get_by_role("button", name="Post comment").click()
                alert = widget.get_by_role("alert")
                await alert.wait_for(timeout=10_000)
                assert "locked" in await alert.inner_text()

                await widget.get_by_role("button", name="Sign out").click()
                await sign_in.wait_for(timeout=10_000)
                assert not [key for key in await page.evaluate("Object.keys(localStorage)")
                            if key.startswith("conversation-engine:session:")]
                revoked = await database.fetch_value("SELECT COUNT(*) FROM web_sessions WHERE revoked_at IS NOT NULL")
                assert revoked == 1
            finally:
                await browser.close()
    finally:
        await blog.stop()
