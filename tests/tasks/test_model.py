from lugh.tasks import FINISHED, TRANSITIONS, TaskStatus, can_move
from lugh.tasks.model import CANCELLABLE, RETRYABLE, REVIEWABLE

S = TaskStatus


def test_every_status_has_its_legal_moves():
    assert set(TRANSITIONS) == set(TaskStatus)


def test_a_task_runs_before_it_can_await_review_or_be_done():
    assert can_move("queued", "running")
    assert not can_move("queued", "done") and not can_move("queued", "awaiting_review")
    assert can_move("running", "awaiting_review") and can_move("awaiting_review", "done")


def test_a_finished_task_can_only_be_retried_and_done_is_final():
    for status in FINISHED:
        assert TRANSITIONS[status] <= {S.QUEUED}
    assert TRANSITIONS[S.DONE] == frozenset()


def test_the_owners_moves_are_legal_transitions():
    for allowed, to in ((CANCELLABLE, S.CANCELLED), (RETRYABLE, S.QUEUED), (REVIEWABLE, S.DONE)):
        assert all(can_move(status, to) for status in allowed)
    assert S.RUNNING not in RETRYABLE  # only its worker or the sweeper requeues a running task
