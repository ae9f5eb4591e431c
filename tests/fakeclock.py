"""The clock the checks' waits run on in offline tests: time moves only when a wait sleeps, so a
failing wait ends at once and a time-out is reached exactly. Imported by name (tests/ is on
sys.path through tests/conftest.py)."""
from __future__ import annotations


class FakeClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += max(s, 0.001)   # a zero sleep still moves time: no wait can spin forever

    advance = sleep
