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
_app: str | None = None


def for_app(app_id: str | None) -> None:
    """The app the invocation's metrics are also counted under (dimension App, beside the stack's totals,
    which the alarms watch); None until the request's app is known, so a made-up app id adds no metric."""
    global _app
    _app = app_id


def _add(name: str, unit: MetricUnit, value: float) -> None:
    if _app and not metrics.metric_set:  # the invocation's first metric: its set of dimensions goes with it
        metrics.add_dimensions(service=metrics.provider.service, App=_app)
    metrics.add_metric(name=name, unit=unit, value=value)


def count(name: str, value: int = 1) -> None:
    _add(name, MetricUnit.Count, value)


def upstream_latency(milliseconds: float) -> None:
    _add("UpstreamLatency", MetricUnit.Milliseconds, milliseconds)


def error(code: str) -> None:
    """An error answered to a widget, by its code (one metric per code, so each can be alarmed on)."""
    totals_and_app = [{"code": code}] + ([{"code": code, "App": _app}] if _app else [])
    for dimensions in totals_and_app:
        with single_metric(name="Errors", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
            for name, value in dimensions.items():
                metric.add_dimension(name=name, value=value)


def degraded(what: str, error: Exception) -> None:
    """DynamoDB failed and the relay carries on without it: `what` it did instead."""
    logger.warning(f"DynamoDB unavailable: {what}", extra={"reason": str(error)})
    count("StoreDegradations")
