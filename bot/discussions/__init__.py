"""Discussion capture: every message in a post's thread becomes a stored comment.

Plain Python, no discord import: the cog turns discord.py objects and raw payloads into the
dataclasses of :mod:`bot.model.messages`; :mod:`bot.discussions.capture` decides what is kept;
:mod:`bot.discussions.service` turns events into cheap queued writes and plans catch-up.
"""
