"""Background loops never die unobserved: one that raises (even in its before_loop, which discord.py
does not report) is logged with its traceback and started again; stopping it stops it for good."""

from __future__ import annotations

import asyncio
import logging

import pytest
from discord.ext import tasks

from cogs._background import Supervised
from tests.announcements_support import wait_for


async def test_a_loop_that_dies_is_logged_with_its_traceback_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cogs._background")
    runs: list[int] = []
    starts: list[int] = []

    @tasks.loop(seconds=3600)
    async def work() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("a bug in the loop body")  # not one tasks.loop retries: the task ends

    @work.before_loop
    async def before() -> None:
        starts.append(1)
        if len(starts) == 1:
            raise RuntimeError("the database was not ready")

    supervised = Supervised(work, restart_delay=0.01)
    supervised.start()
    try:
        await wait_for(lambda: len(runs) == 2)
        assert supervised.restarts == 2 and work.is_running()
        died = [r.exc_info[1] for r in caplog.records if "died" in r.getMessage() and r.exc_info]
        assert [type(error) for error in died] == [RuntimeError, ValueError]
    finally:
        supervised.stop()
    await asyncio.sleep(0.05)
    assert not work.is_running() and supervised.restarts == 2
