"""WebSub: looks after the feeds' hub subscriptions (subscribe, renew, retry, unsubscribe) on a
timer; thin glue over bot.feeds.websub. The hub's requests arrive at the web server."""

from __future__ import annotations

import logging

from discord.ext import commands, tasks

from bot.app import ConversationBot
from bot.feeds.websub import WebSubManager
from cogs._background import Supervised

log = logging.getLogger(__name__)


class WebSub(commands.Cog):
    def __init__(self, bot: ConversationBot) -> None:
        self.bot = bot
        self.manager = WebSubManager(bot.database, bot.feed_session, bot.settings)
        self.subscription_loop.change_interval(seconds=bot.settings.tuning.websub_tick_seconds)
        self.loop = Supervised(self.subscription_loop)

    async def cog_load(self) -> None:
        if self.bot.settings.websub_enabled:  # without PUBLIC_URL and WEB_PORT no hub could reach the bot
            # Once per bot: processes sharing a database would otherwise each subscribe.
            await self.bot.once_per_bot.add("WebSub subscriptions", self._start, self._stop)

    async def cog_unload(self) -> None:
        await self.bot.once_per_bot.remove("WebSub subscriptions")

    async def _start(self) -> None:
        self.loop.start()

    async def _stop(self) -> None:
        self.loop.stop()

    @tasks.loop(seconds=60)  # the interval is set from the settings' tuning in __init__
    async def subscription_loop(self) -> None:
        try:
            await self.manager.run_due()
        except Exception:  # the loop must survive anything (a database hiccup, a bug)
            log.exception("WebSub: looking after the subscriptions failed; trying again next tick")

    @subscription_loop.before_loop
    async def _before_subscriptions(self) -> None:
        await self.bot.wait_until_ready()


async def setup(bot: ConversationBot) -> None:
    await bot.add_cog(WebSub(bot))
