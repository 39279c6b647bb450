"""The services every front door uses, built once by the composition root (lugh.app)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg

from lugh.config import Settings
from lugh.projects import AgentService, ProjectService


@dataclass
class Services:
    """What components and commands are built from; each capability adds its service here."""

    settings: Settings
    pool: asyncpg.Pool
    data_dir: Path
    projects: ProjectService
    agents: AgentService
