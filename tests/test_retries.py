"""Bounded retries with backoff, and isolating the rows a failing deployment call cannot serve."""

import pytest

from alma.core.retries import RetryPolicy, call_with_retries, reason, settle


class Flaky:
    """Fails the first `failures` calls, then returns `value`."""

    def __init__(self, failures: int, value="ok"):
        self.failures, self.value, self.calls = failures, value, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"replica died (call {self.calls})")
        return self.value


def test_backoff_doubles_up_to_its_cap():
    assert RetryPolicy(retries=5, backoff_s=1, max_backoff_s=5).delays() == [1, 2, 4, 5, 5]
    assert RetryPolicy(retries=0).delays() == []


def test_a_call_is_retried_until_it_succeeds_with_backoff_in_between():
    waits = []
    outcome = call_with_retries(Flaky(2), RetryPolicy(retries=3, backoff_s=0.5), sleep=waits.append)
    assert outcome.ok and outcome.value == "ok" and outcome.attempts == 3
    assert waits == [0.5, 1.0]


def test_retries_are_bounded_and_the_last_reason_is_kept():
    flaky, waits = Flaky(10), []
    outcome = call_with_retries(flaky, RetryPolicy(retries=2, backoff_s=1), sleep=waits.append)
    assert not outcome.ok and outcome.attempts == 3 == flaky.calls
    assert outcome.error == "ConnectionError: replica died (call 3)" and waits == [1, 2]


def test_first_attempt_can_be_a_request_already_in_flight():
    sent = Flaky(0, "resent")
    outcome = call_with_retries(sent, RetryPolicy(retries=1, backoff_s=0), first=Flaky(1), sleep=lambda s: None)
    assert outcome.value == "resent" and outcome.attempts == 2 and sent.calls == 1


def test_settle_retries_the_whole_call_first():
    calls = []

    def call(keys):
        calls.append(list(keys))
        if len(calls) == 1:
            raise ConnectionError("replica died")
        return [k * 10 for k in keys]

    outcomes = settle([1, 2, 3], call, RetryPolicy(retries=2, backoff_s=0), sleep=lambda s: None)
    assert [o.value for o in outcomes] == [10, 20, 30] and all(o.attempts == 2 for o in outcomes)
    assert calls == [[1, 2, 3], [1, 2, 3]]


def test_a_row_that_always_fails_is_isolated_and_its_batch_served():
    def call(keys):
        if 2 in keys:
            raise ValueError("row 2 is poison\nremote traceback ...")
        return [k * 10 for k in keys]

    outcomes = settle([1, 2, 3], call, RetryPolicy(retries=1, backoff_s=0), sleep=lambda s: None)
    assert [o.value for o in outcomes] == [10, None, 30]
    assert [o.ok for o in outcomes] == [True, False, True] and {o.attempts for o in outcomes} == {3}
    assert outcomes[1].error.startswith("ValueError: row 2 is poison (alone; with its batch: ValueError")
    assert "\n" not in outcomes[1].error


def test_a_single_row_is_not_tried_twice_alone():
    calls = []

    def call(keys):
        calls.append(keys)
        raise TimeoutError("no replica")

    [outcome] = settle(["a"], call, RetryPolicy(retries=2, backoff_s=0), sleep=lambda s: None)
    assert outcome.error == "TimeoutError: no replica" and outcome.attempts == 3 == len(calls)


def test_a_call_returning_the_wrong_number_of_results_is_a_bug_not_a_row_error():
    with pytest.raises(ValueError, match="2 results for 3 rows"):
        settle([1, 2, 3], lambda keys: [1, 2], RetryPolicy(retries=0))


def test_reason_unwraps_a_remote_error_and_stays_one_short_line():
    class RemoteError(Exception):
        def __init__(self, cause):
            super().__init__("Traceback (most recent call last):\n  File ...\nKeyError: 'x'")
            self.cause = cause

    assert reason(RemoteError(KeyError("x"))) == "KeyError: 'x'"
    assert reason(RuntimeError()) == "RuntimeError"
    long = reason(RuntimeError("y" * 2000))
    assert len(long) == 500 and long.endswith("...")
