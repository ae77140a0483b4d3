import pytest

from relay.errors import ErrorKind, RelayError
from relay.limits import Budgets, InMemoryCounters, RateLimiter

T0 = 1_700_000_040.0  # 40 s into a minute window


def limiter(**budgets):
    off = {"session_per_minute": 0, "session_per_day": 0, "ip_per_minute": 0, "ip_per_day": 0}
    return RateLimiter(InMemoryCounters(), Budgets(**(off | budgets)))


def spend_until_refused(limits, count, *, session=lambda i: "session-1", ip="203.0.113.10", now=T0):
    for i in range(count):
        try:
            limits.spend(session_id=session(i), client_ip=ip, now=now)
        except RelayError as error:
            return i, error
    return count, None


def test_a_session_burst_is_refused_after_its_minute_budget_with_retry_after():
    spent, error = spend_until_refused(limiter(session_per_minute=20), 40)
    assert spent == 20
    assert error.kind is ErrorKind.RATE_LIMITED and error.kind.status == 429
    minute_start = T0 - T0 % 60
    assert error.retry_after == 60 - (T0 - minute_start)


def test_one_ip_across_many_sessions_is_refused_after_its_budget():
    spent, error = spend_until_refused(limiter(ip_per_minute=30, session_per_minute=5), 100, session=str)
    assert spent == 30 and error is not None


def test_other_ips_keep_their_own_budget():
    limits = limiter(ip_per_minute=3)
    spend_until_refused(limits, 10, session=str, ip="203.0.113.1")
    assert spend_until_refused(limits, 3, session=str, ip="203.0.113.2") == (3, None)


def test_daily_cap_holds_across_minutes_and_resets_the_next_day():
    limits = limiter(session_per_minute=10, session_per_day=25)
    day_start = T0 - T0 % 86_400
    spent = sum(spend_until_refused(limits, 10, now=day_start + 60 * m)[0] for m in range(5))
    assert spent == 25
    _, error = spend_until_refused(limits, 1, now=day_start + 3_600)
    assert error.retry_after == 86_400 - 3_600
    assert spend_until_refused(limits, 1, now=day_start + 86_400) == (1, None)


def test_minute_budget_resets_in_the_next_window():
    limits = limiter(session_per_minute=2)
    assert spend_until_refused(limits, 5)[0] == 2
    assert spend_until_refused(limits, 5, now=T0 + 60)[0] == 2


def test_zero_switches_a_budget_off():
    assert spend_until_refused(limiter(), 500) == (500, None)


@pytest.mark.parametrize("ip", [None, ""])
def test_without_a_client_ip_only_session_budgets_apply(ip):
    assert spend_until_refused(limiter(ip_per_minute=1, session_per_minute=3), 10, ip=ip)[0] == 3


def test_in_memory_counters_forget_ended_windows():
    clock = [0.0]
    counters = InMemoryCounters(clock=lambda: clock[0])
    for i in range(InMemoryCounters.PRUNE_AT):
        assert counters.spend(f"k{i}", {"day": 1}, expires_at=100) is None
    assert counters.spend("k0", {"day": 1}, expires_at=100) == "day"
    clock[0] = 200
    assert counters.spend("k0", {"day": 1}, expires_at=300) is None  # its old window was dropped


class CountingCounters(InMemoryCounters):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def spend(self, *args, **kwargs):
        self.writes += 1
        return super().spend(*args, **kwargs)


def test_a_turn_spends_both_windows_of_session_and_ip_in_two_counter_writes():
    counters = CountingCounters()
    limits = RateLimiter(
        counters, Budgets(session_per_minute=5, session_per_day=9, ip_per_minute=5, ip_per_day=9)
    )
    limits.spend(session_id="s", client_ip="203.0.113.10", now=T0)
    assert counters.writes == 2


def test_a_spent_day_budget_waits_for_the_next_day_whatever_the_minute():
    limits = limiter(session_per_minute=3, session_per_day=2)
    assert spend_until_refused(limits, 5)[0] == 2
    _, error = spend_until_refused(limits, 1, now=T0 + 120)
    assert error.retry_after == 86_400 - (T0 + 120) % 86_400
