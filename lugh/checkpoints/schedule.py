"""The `checkpoints` component of `lugh run`: finishes restores a crash cut short, then takes
the daily checkpoints and applies retention, once an hour."""

from __future__ import annotations

import asyncio

from lugh.checkpoints.service import CheckpointService
from lugh.logs import get_logger

log = get_logger("lugh.checkpoints.schedule")

CHECK_EVERY_S = 3600.0


class DailyCheckpoints:
    name = "checkpoints"

    def __init__(
        self, service: CheckpointService, *, daily: bool = True, every_s: float = CHECK_EVERY_S
    ) -> None:
        self.service = service
        self.daily = daily
        self.every_s = every_s
        self.rounds = 0  # finished rounds, for tests and health checks
        self.round_done = asyncio.Event()

    async def run(self) -> None:
        for report in await self.service.resume_restores():
            log.info("interrupted restore finished", checkpoint=report.checkpoint.id)
        while True:
            if self.daily:
                await self.service.daily()
            cleaned = await self.service.clean()
            if cleaned.deleted or cleaned.orphans:
                log.info(
                    "checkpoints cleaned", deleted=cleaned.deleted,
                    orphans=[str(p) for p in cleaned.orphans],
                )  # fmt: skip
            self.rounds += 1
            self.round_done.set()
            await asyncio.sleep(self.every_s)
