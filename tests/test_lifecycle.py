import pytest

from jupyter_actors.platform.errors import Conflict
from jupyter_actors.platform.lifecycle import TERMINAL, RunStatus, can_transition, check_transition

S = RunStatus

ALLOWED = {
    (S.READY, S.RUNNING), (S.READY, S.FAILED), (S.READY, S.ABORTED),
    (S.RUNNING, S.SUCCEEDED), (S.RUNNING, S.FAILED), (S.RUNNING, S.TIMING_OUT), (S.RUNNING, S.ABORTING),
    (S.TIMING_OUT, S.TIMED_OUT), (S.ABORTING, S.ABORTED),
    (S.SUCCEEDED, S.RUNNING), (S.FAILED, S.RUNNING), (S.TIMED_OUT, S.RUNNING), (S.ABORTED, S.RUNNING),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_exactly_the_seed_transitions_are_allowed(current, target):
    assert can_transition(current, target) == ((current, target) in ALLOWED)
    if (current, target) in ALLOWED:
        assert check_transition(current.value, target.value) is target
    else:
        with pytest.raises(Conflict) as info:
            check_transition(current, target)
        assert info.value.status == 409
        assert current.value in info.value.message and target.value in info.value.message


def test_terminal_statuses():
    assert {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.ABORTED} == TERMINAL
    assert str(S.TIMING_OUT) == "TIMING-OUT"
