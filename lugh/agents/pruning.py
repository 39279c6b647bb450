"""The `worktrees` component of `lugh run`: once an hour, the worktrees and `lugh/*` branches no
live task owns are pruned, a failed task's once LUGH_FAILED_WORKTREE_KEEP_HOURS have passed.

At start `lugh run` prunes once before anything runs (the reconciliation after a crash); this
keeps doing it for a process that runs for weeks.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from lugh.agents.worktrees import WorktreeManager
from lugh.logs import get_logger
from lugh.projects import ProjectService

log = get_logger("lugh.agents.pruning")

EVERY_S = 3600.0


class WorktreePruning:
    name = "worktrees"

    def __init__(
        self, worktrees: WorktreeManager, projects: ProjectService, *, keep_failed_for: timedelta,
        every_s: float = EVERY_S,
    ) -> None:  # fmt: skip
        self.worktrees = worktrees
        self.projects = projects
        self.keep_failed_for = keep_failed_for
        self.every_s = every_s
        self.rounds = 0  # finished rounds, for tests
        self.round_done = asyncio.Event()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.worktrees.prune(
                    await self.projects.list(), keep_failed_for=self.keep_failed_for
                )
            except Exception:  # the next round tries again
                log.exception("cannot prune worktrees")
            self.rounds += 1
            self.round_done.set()
