"""A model-based test of the rate limiters against a real server, on an injected clock (hypothesis
``RuleBasedStateMachine``).

Rules enter and leave a concurrency limiter (2 slots, holds lapse after 5 s) as several holders, some of
which never leave (killed), hit a sliding window (3 per second) and a token bucket (4 tokens per 2 s), and
move the clock by binary fractions of a second (so the model's arithmetic is exact). A pure model says
which calls get in; every rule checks the limiter's answer against it, and after every step the
invariants compare the model with Redis: the holders the concurrency limiter keeps are the model's live
ones, and the window holds exactly the admissions of the last second.
"""

from __future__ import annotations

import os

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from workerkit import config, limiter
from workerkit.keys import Keys
from workerkit.limiter import Limiter, OverLimit

KEYS = Keys()
SIZE, HOLD = 2, 5.0
WINDOW_COUNT, WINDOW = 3, 1.0
BUCKET_SIZE, BUCKET_PERIOD = 4, 2.0


class LimiterMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        config.reset()
        config.configure(redis_url=self.url)
        self.conn = redis.Redis.from_url(self.url)
        self.conn.flushall()
        self.now = 1_000_000.0
        self.holders: dict[int, tuple[Limiter, float]] = {}
        """Holder -> its limiter and when its hold lapses."""
        self.admitted: list[float] = []
        self.tokens, self.filled_at = float(BUCKET_SIZE), self.now

    def teardown(self) -> None:
        self.conn.close()
        config.reset()

    def clock(self) -> float:
        return self.now

    def _live(self) -> dict[int, float]:
        return {holder: lapse for holder, (_, lapse) in self.holders.items() if lapse > self.now}

    @rule(holder=st.integers(0, 4))
    def enter(self, holder: int) -> None:
        if holder in self._live():
            return
        self.holders.pop(holder, None)
        slot = limiter.concurrent("c", SIZE, lock_timeout=HOLD, clock=self.clock)
        expected = len(self._live()) < SIZE
        try:
            slot.__enter__()
        except OverLimit:
            assert not expected, self._live()
            return
        assert expected, self._live()
        self.holders[holder] = (slot, self.now + HOLD)

    @rule(holder=st.integers(0, 4))
    def leave(self, holder: int) -> None:
        found = self.holders.pop(holder, None)
        if found is not None:
            found[0].__exit__(None, None, None)

    @rule()
    def hit_the_window(self) -> None:
        recent = [at for at in self.admitted if at > self.now - WINDOW]
        expected = len(recent) < WINDOW_COUNT
        window = limiter.window("w", WINDOW_COUNT, WINDOW, clock=self.clock)
        try:
            with window:
                pass
        except OverLimit as refused:
            assert not expected, recent
            assert refused.retry_after == min(recent) + WINDOW - self.now
            return
        assert expected, recent
        self.admitted.append(self.now)

    @rule()
    def take_a_token(self) -> None:
        tokens = min(BUCKET_SIZE, self.tokens + (self.now - self.filled_at) * BUCKET_SIZE / BUCKET_PERIOD)
        expected = tokens >= 1
        try:
            with limiter.bucket("b", BUCKET_SIZE, BUCKET_PERIOD, clock=self.clock):
                pass
        except OverLimit:
            assert not expected, tokens
        else:
            assert expected, tokens
            tokens -= 1
        self.tokens, self.filled_at = tokens, self.now

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.0, 6.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def the_concurrency_limiter_keeps_no_more_than_its_live_holders(self) -> None:
        lapsed_by = f"({self.now * 1000}"  # a hold lapses when its time is reached: only later ones are kept
        kept = self.conn.zrangebyscore(KEYS.limiter("c", "concurrent"), lapsed_by, "+inf")
        assert len(kept) == len(self._live()) <= SIZE

    @invariant()
    def the_window_holds_the_last_second(self) -> None:
        kept = self.conn.zrangebyscore(KEYS.limiter("w", "window"), f"({(self.now - WINDOW) * 1000}", "+inf")
        assert len(kept) == len([at for at in self.admitted if at > self.now - WINDOW]) <= WINDOW_COUNT


def test_the_limiters_admit_what_the_model_admits(redis_url: str) -> None:
    LimiterMachine.url = redis_url
    run_state_machine_as_test(LimiterMachine, settings=settings(
        max_examples=int(os.environ.get("WORKERKIT_MODEL_EXAMPLES", 60)),
        stateful_step_count=int(os.environ.get("WORKERKIT_MODEL_STEPS", 40)),
        deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=bool(os.environ.get("CI")),
    ))
