"""What 1M turns cost at list prices, from the per-turn figures the benchmark measures.

Prices: list prices as published by AWS for us-east-1 on the pages named below; they could not be checked live
from the machine the benchmark was written on (docs/benchmarks.md says where each was read). No free tier, no
Savings Plans, first pricing tier only.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES = {
    # https://aws.amazon.com/lambda/pricing/ (Arm: first 7.5 billion GB-seconds per month)
    "lambda_arm_gb_second": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    # https://aws.amazon.com/api-gateway/pricing/ (REST APIs: first 333 million requests per month)
    "rest_api_request": 3.50 / 1e6,
    # https://aws.amazon.com/dynamodb/pricing/on-demand/ (on-demand, Standard table class, since 1 Nov 2024)
    "dynamodb_write_unit": 0.625 / 1e6,
    "dynamodb_read_unit": 0.125 / 1e6,
    # https://aws.amazon.com/cloudwatch/pricing/ (Logs: standard ingestion, first tier)
    "logs_ingested_gb": 0.50,
}
SOURCES = {
    "lambda": "https://aws.amazon.com/lambda/pricing/",
    "api_gateway": "https://aws.amazon.com/api-gateway/pricing/",
    "dynamodb": "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    "cloudwatch": "https://aws.amazon.com/cloudwatch/pricing/",
}
MEMORY_MB = (128, 256, 512)
DIFY_SECONDS = (2.0, 10.0)
TURNS = 1_000_000


@dataclass(frozen=True)
class TurnCost:
    memory_mb: int
    dify_seconds: float
    lambda_duration: float
    lambda_requests: float
    api_gateway: float
    dynamodb: float
    logs: float

    @property
    def total(self) -> float:
        return self.lambda_duration + self.lambda_requests + self.api_gateway + self.dynamodb + self.logs


def per_million_turns(
    *, memory_mb: int, dify_seconds: float, overhead_ms: float, writes: float, reads: float, log_bytes: float
) -> TurnCost:
    """Billed duration: Dify's answer time plus the relay's measured overhead (DynamoDB round trips are not
    included; see docs/benchmarks.md). `writes`/`reads` are DynamoDB request units per turn."""
    seconds = dify_seconds + overhead_ms / 1000
    return TurnCost(
        memory_mb=memory_mb,
        dify_seconds=dify_seconds,
        lambda_duration=TURNS * seconds * memory_mb / 1024 * PRICES["lambda_arm_gb_second"],
        lambda_requests=TURNS * PRICES["lambda_request"],
        api_gateway=TURNS * PRICES["rest_api_request"],
        dynamodb=TURNS * (writes * PRICES["dynamodb_write_unit"] + reads * PRICES["dynamodb_read_unit"]),
        logs=TURNS * log_bytes / 1e9 * PRICES["logs_ingested_gb"],
    )


def table(*, overhead_ms: float, writes: float, reads: float, log_bytes: float) -> list[TurnCost]:
    return [
        per_million_turns(
            memory_mb=memory,
            dify_seconds=dify,
            overhead_ms=overhead_ms,
            writes=writes,
            reads=reads,
            log_bytes=log_bytes,
        )
        for dify in DIFY_SECONDS
        for memory in MEMORY_MB
    ]
