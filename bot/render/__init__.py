"""Rendering between blog HTML, Discord markdown and safe comment HTML (no discord import)."""

from bot.render.discord_to_html import MentionNames, discord_markdown_to_html, discord_markdown_to_text
from bot.render.html_to_discord import first_image_src, html_to_discord, html_to_plain_text
from bot.render.text import cut_at_word, escape_discord_markdown, neutralise_mentions, thread_name

__all__ = [
    "MentionNames",
    "cut_at_word",
    "discord_markdown_to_html",
    "discord_markdown_to_text",
    "escape_discord_markdown",
    "first_image_src",
    "html_to_discord",
    "html_to_plain_text",
    "neutralise_mentions",
    "thread_name",
]
