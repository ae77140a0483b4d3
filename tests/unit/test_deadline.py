from relay.deadline import Deadline


class Context:
    def __init__(self, remaining_ms):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self):
        return self.remaining_ms


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_the_budget_is_the_shorter_of_lambda_and_gateway_less_the_margin():
    gateway_bound = Deadline.for_invocation(Context(60_000), gateway_timeout_ms=29_000, margin_ms=1_500)
    lambda_bound = Deadline.for_invocation(Context(10_000), gateway_timeout_ms=29_000, margin_ms=1_500)
    assert 27.4 < gateway_bound.remaining() <= 27.5
    assert 8.4 < lambda_bound.remaining() <= 8.5


def test_a_spent_budget_is_expired_and_never_negative():
    clock = Clock()
    deadline = Deadline(2, clock=clock)
    assert deadline.remaining() == 2 and not deadline.expired
    clock.now += 5
    assert deadline.remaining() == 0 and deadline.expired
    assert Deadline.for_invocation(Context(1_000), gateway_timeout_ms=29_000, margin_ms=1_500).expired
