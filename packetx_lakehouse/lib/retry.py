"""The one way this project retries: bounded attempts, exponential backoff with full jitter.

Built on tenacity (already under PyIceberg, which retries with it too). Call it on the function
to retry, which starts each attempt from fresh state (a lost commit refreshes its table)::

    result = retrying(CommitFailedException, attempts=5)(commit_to_fresh_table)

or, where the attempts share state, as tenacity's loop (``for attempt in retrying(...): with
attempt: ...``). After the last attempt the last error is raised as it is. Full jitter (each wait drawn from
``[0, min(max_delay, base_delay * 2**(n-1))]`` before retry ``n``) keeps writers that collided
from retrying in lockstep.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

#: What to retry: exception classes, or a predicate on the error.
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def retrying(
    retry_on: RetryOn,
    *,
    attempts: int,
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    on_retry: Callable[[int, BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    """A tenacity ``Retrying`` that tries again on ``retry_on`` (call it on a function, or loop over it).

    Args:
        retry_on: The errors worth another attempt; anything else is raised at once.
        attempts: Attempts in all (1: no retry).
        base_delay: Cap of the first wait, doubled for each later one, up to ``max_delay``.
        on_retry: Hears ``(attempt that failed, its error)`` before each wait.
        sleep: How to wait (tests pass a recorder).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    is_class = isinstance(retry_on, type) or isinstance(retry_on, tuple)
    before_sleep = None
    if on_retry is not None:
        def before_sleep(state: RetryCallState) -> None:
            on_retry(state.attempt_number, state.outcome.exception())

    return Retrying(
        retry=retry_if_exception_type(retry_on) if is_class else retry_if_exception(retry_on),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=base_delay, max=max_delay),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
