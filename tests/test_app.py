import asyncio

from lugh.app import run_components, supervise

BOUND_S = 5


class Recorder:
    """A real component: records what happens to it; `run` works until cancelled."""

    def __init__(self, name: str, journal: list[str], *, fail_times: int = 0, stop_s: float = 0):
        self.name = name
        self.journal = journal
        self.fail_times = fail_times
        self.stop_s = stop_s
        self.started = asyncio.Event()
        self.starts = 0

    async def run(self) -> None:
        self.starts += 1
        self.journal.append(f"{self.name} started")
        if self.starts <= self.fail_times:
            raise RuntimeError(f"{self.name} broke")
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.journal.append(f"{self.name} cancelled")
            raise

    async def stop(self) -> None:
        self.journal.append(f"{self.name} asked to stop")
        if self.stop_s:
            await asyncio.wait_for(asyncio.Event().wait(), self.stop_s)


async def test_a_failing_component_is_restarted_until_it_runs():
    journal: list[str] = []
    flaky = Recorder("flaky", journal, fail_times=2)

    task = asyncio.create_task(supervise(flaky, backoff=(0.0,)))
    await asyncio.wait_for(flaky.started.wait(), BOUND_S)
    task.cancel()

    assert flaky.starts == 3
    assert journal[:3] == ["flaky started"] * 3


async def test_components_are_stopped_in_reverse_order_each_asked_before_cancelled():
    journal: list[str] = []
    first, second = Recorder("first", journal), Recorder("second", journal)
    stop = asyncio.Event()

    running = asyncio.create_task(run_components([first, second], stop))
    await asyncio.wait_for(asyncio.gather(first.started.wait(), second.started.wait()), BOUND_S)
    stop.set()
    await asyncio.wait_for(running, BOUND_S)

    assert journal[2:] == [
        "second asked to stop",
        "second cancelled",
        "first asked to stop",
        "first cancelled",
    ]


async def test_a_component_that_does_not_finish_within_the_grace_period_is_cancelled():
    journal: list[str] = []
    slow = Recorder("slow", journal, stop_s=60)
    stop = asyncio.Event()

    running = asyncio.create_task(run_components([slow], stop, grace_s=0.05))
    await asyncio.wait_for(slow.started.wait(), BOUND_S)
    stop.set()
    await asyncio.wait_for(running, BOUND_S)

    assert journal[-2:] == ["slow asked to stop", "slow cancelled"]
