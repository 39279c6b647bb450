"""/metrics counts the components that failed and were started again."""

from __future__ import annotations

from lugh.app import supervise
from lugh.metrics import RESTARTS, Metrics


class FailsTwice:
    """A component that fails on its first two runs and then finishes."""

    name = "flaky-for-metrics"

    def __init__(self) -> None:
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= 2:
            raise RuntimeError("the dependency went away")

    async def stop(self) -> None:
        pass


async def test_a_component_restarted_twice_shows_two_restarts_in_the_metrics(pool, database):
    before = RESTARTS["flaky-for-metrics"]
    component = FailsTwice()

    await supervise(component, backoff=(0.0,))

    text = await Metrics(pool, database, "dev").render()
    assert component.runs == 3
    assert "# TYPE lugh_component_restarts_total counter" in text
    assert f'lugh_component_restarts_total{{component="flaky-for-metrics"}} {before + 2}' in text
