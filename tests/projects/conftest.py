from pathlib import Path

import pytest

from lugh.projects import AgentService, ProjectService


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def projects(pool, data_dir) -> ProjectService:
    return ProjectService(pool, data_dir)


@pytest.fixture
def agents(pool) -> AgentService:
    return AgentService(pool)
