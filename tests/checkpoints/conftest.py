from __future__ import annotations

from pathlib import Path

import pytest

from lugh.checkpoints import CheckpointService
from lugh.services import build_services
from tests.conftest import make_repo


@pytest.fixture
async def services(pool, database, make_settings):
    services = build_services(make_settings(LUGH_SANDBOX="none"), pool, database)
    yield services
    await services.aclose()


@pytest.fixture
def checkpoints(services) -> CheckpointService:
    return services.checkpoints


@pytest.fixture
async def two_projects(services, tmp_path: Path):
    """Projects `alpha` and `beta`, each with its own repository."""
    for name in ("alpha", "beta"):
        files = {"README.md": f"# {name}\n", "src/app.py": "x = 1\n"}
        repo = make_repo(tmp_path / f"repo-{name}", files)
        await services.projects.register(name, str(repo))
    return services
