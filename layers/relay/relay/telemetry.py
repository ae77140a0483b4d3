"""The relay's CloudWatch metrics (Powertools EMF), flushed once per invocation by the handler."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger(child=True)
NAMESPACE = "DifyRelay"
metrics = Metrics(namespace=NAMESPACE)
# A preflight or a refused request has nothing to report; that is not worth a warning per invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def upstream_latency(milliseconds: float) -> None:
    metrics.add_metric(name="UpstreamLatency", unit=MetricUnit.Milliseconds, value=milliseconds)


def error(code: str) -> None:
    """An error answered to a widget, by its code (one metric per code, so each can be alarmed on)."""
    with single_metric(name="Errors", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="code", value=code)


def degraded(what: str, error: Exception) -> None:
    """DynamoDB failed and the relay carries on without it: `what` it did instead."""
    logger.warning(f"DynamoDB unavailable: {what}", extra={"reason": str(error)})
    count("StoreDegradations")
