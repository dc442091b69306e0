import pytest

from packetx_lakehouse.lib.retry import retrying


class Lost(Exception):
    pass


def _flaky(failures: int, error: type[BaseException] = Lost):
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error(f"failure {len(calls)}")
        return "done"

    return call, calls


def _run(call, **options) -> str:
    return retrying(Lost, **options)(call)


def test_a_retried_error_is_tried_again_with_growing_jittered_waits_until_it_succeeds():
    call, calls = _flaky(3)
    waits: list[float] = []
    heard: list[tuple[int, str]] = []
    assert _run(call, attempts=5, base_delay=0.1, max_delay=0.3, sleep=waits.append,
                on_retry=lambda n, e: heard.append((n, str(e)))) == "done"
    assert len(calls) == 4
    assert heard == [(1, "failure 1"), (2, "failure 2"), (3, "failure 3")]
    assert len(waits) == 3 and all(0 <= w <= cap for w, cap in zip(waits, (0.1, 0.2, 0.3)))


def test_after_the_last_attempt_the_last_error_is_raised_as_it_is():
    call, calls = _flaky(99)
    with pytest.raises(Lost, match="failure 3"):
        _run(call, attempts=3, sleep=lambda _: None)
    assert len(calls) == 3


def test_other_errors_are_raised_at_once():
    call, calls = _flaky(1, KeyError)
    with pytest.raises(KeyError):
        _run(call, attempts=5, sleep=lambda _: None)
    assert len(calls) == 1


def test_a_predicate_chooses_which_errors_to_retry():
    calls: list[str] = []

    def call() -> str:
        calls.append("x")
        raise ValueError("lost to expiry" if len(calls) == 1 else "bad input")

    with pytest.raises(ValueError, match="bad input"):
        for attempt in retrying(lambda e: isinstance(e, ValueError) and "expiry" in str(e), attempts=5,
                                sleep=lambda _: None):
            with attempt:
                call()
    assert len(calls) == 2


def test_at_least_one_attempt():
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        retrying(Lost, attempts=0)
