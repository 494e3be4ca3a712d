"""The real bot in a child process, as ``python -m bot run`` starts it, with a test's Settings:
started, SIGKILLed or stopped by the test, its log in a file."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import asyncio, json, sys
from pathlib import Path
from bot.__main__ import run_bot
from bot.config import Settings, Tuning, configure_logging

values = json.loads(sys.argv[1])
tuning = Tuning(**values.pop("tuning"))
values["database_path"] = Path(values["database_path"])
for name in ("feed_urls", "web_allowed_origins", "webhook_urls"):
    values[name] = tuple(values[name])
if values["shard_ids"] is not None:
    values["shard_ids"] = tuple(values["shard_ids"])
configure_logging("INFO")
sys.exit(asyncio.run(run_bot(Settings(tuning=tuning, **values))))
"""


def settings_json(settings: Settings) -> str:
    values: dict[str, Any] = {item.name: getattr(settings, item.name) for item in fields(settings)}
    values["database_path"] = str(settings.database_path)
    values["tuning"] = asdict(settings.tuning)
    return json.dumps(values)


@dataclass
class BotProcess:
    """One bot process of ``settings``; what it logs goes to ``log_path``."""

    settings: Settings
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CHILD, settings_json(self.settings), cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)

    async def kill(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), 30)

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            await self.kill()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self) -> str:
        return self.log()[-4000:]


async def until(condition: Callable[[], Any], bot: BotProcess, what: str,
                timeout: float = 30.0) -> Any:  # noqa: ASYNC109
    """Until ``condition()`` is true (its value), failing with the bot's log if the bot exited first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if bot.process is not None and bot.process.returncode is not None:
            raise AssertionError(f"the bot exited ({bot.process.returncode}) while waiting for {what}:\n{bot.tail()}")
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{bot.tail()}")
        await asyncio.sleep(0.05)
