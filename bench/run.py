"""`make bench`: what the relay costs, measured, each figure against its budget.

    python bench/run.py            # the full run (about a minute or two on 2 cores)
    python bench/run.py --quick    # a smoke run with small counts (about 20 s)
    python bench/run.py --json results.json

Figures: (1) warm overhead of a handler turn over a direct Dify call, and the store calls per turn, in memory
and in DynamoDB; (2) cold start; (3) memory over many turns; (4) agent stream assembly rate; (5) package
sizes; (6) a streamed turn's first event over the simulator's, and the relay's own work per streamed event;
then the cost of 1M turns at list prices. Every child process measures one thing; Dify and the AWS APIs
answer on loopback from a process of their own (bench/loopback.py).

The exit status is 0 when every figure was measured, whether or not it met its budget (`--strict`: 1 when any
figure misses its budget), and 2 when a figure could not be measured.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions" / "relay"), str(ROOT / "layers" / "relay"), str(ROOT)]

from bench import cost, harness, lambda_layout  # noqa: E402
from bench.loopback import Loopback  # noqa: E402

BENCH = ROOT / "bench"
MIB = 1024 * 1024

BUDGET_WARM_MEDIAN_MS = 0.5
BUDGET_WARM_P99_MS = 1.5
BUDGET_COLD_MS = 250.0
BUDGET_PEAK_RSS_MIB = 80.0  # Lambda's "MB" are MiB: fits a 128 MB function with room for the runtime
BUDGET_RSS_GROWTH_KIB = 512  # "no growth": allocator noise only (well under 1 KiB per turn over 900 turns)
BUDGET_EVENTS_PER_S = 200_000
BUDGET_LINEARITY = 1.20
BUDGET_FIRST_EVENT_MS = 2.0  # a streamed turn's first bytes, over the simulator's own first event (median)
BUDGET_COUNTER_WRITES = 2  # per turn: session and client IP, each minute and day in one item
LAMBDA_UNZIPPED_LIMIT = 250 * MIB  # function and all its layers, unzipped (Lambda quota)
LAMBDA_ZIPPED_LIMIT = 50 * MIB  # a zip uploaded directly (Lambda quota)


@dataclass(frozen=True)
class Counts:
    """How much of each figure a run measures."""

    warm_pairs: int
    warm_warmup: int
    cold_runs: int
    importtime_runs: int
    memory_turns: int
    stream_plan: tuple[tuple[int, int], ...]  # (events, repeats)
    all_variants: bool
    streamed_pairs: int


FULL = Counts(2000, 200, 10, 3, 1000, ((1_000, 60), (10_000, 12), (100_000, 3)), True, 1000)
QUICK = Counts(200, 40, 3, 1, 200, ((1_000, 10), (10_000, 3), (100_000, 1)), False, 100)


@dataclass
class Row:
    figure: str
    measure: str
    value: str
    budget: str = ""
    passed: bool | None = None  # None: reported, no budget

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else ("PASS" if self.passed else "FAIL")


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def row(self, *args, **kwargs) -> None:
        self.rows.append(Row(*args, **kwargs))

    def detail(self, text: str = "") -> None:
        self.details.append(text)


def log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- statistics


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0 < q < 1), interpolated between the nearest ranks."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def count(n: float, word: str) -> str:
    return f"{n:g} {word}" + ("" if n == 1 else "s")


def ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


# ---------------------------------------------------------------- children


class ChildFailed(RuntimeError):
    pass


def child(
    layout: lambda_layout.Layout,
    script: str,
    *args: str,
    env: dict[str, str],
    bench_path: str | None = None,
    flags: tuple[str, ...] = (),
    timeout: float = 300,
) -> tuple[dict, str]:
    """Runs bench/<script> in a fresh process; its report (the last line on stdout) and its stderr."""
    command = [layout.python, *layout.flags, *flags, str(BENCH / script), *args]
    env = {**env, "BENCH_PATH": bench_path or layout.bench_path}
    done = subprocess.run(  # noqa: S603 - this repository's own scripts
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise ChildFailed(f"{script} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


# ---------------------------------------------------------------- 1. warm overhead and store calls


REGISTERED_APPS = 50


def warm(results: Results, layout, loopback: Loopback, counts: Counts) -> None:
    log(f"1. warm overhead: {counts.warm_pairs} interleaved pairs after {counts.warm_warmup} warm-up")
    env = harness.relay_env(loopback.dify_url, loopback.aws_url, dynamodb=False, unlimited=True)
    env["KEY_CACHE_SECONDS"] = "86400"  # the key is fetched once; a refetch would be a cold-path cost
    report, _ = child(
        layout, "child_warm.py", str(counts.warm_pairs), str(counts.warm_warmup), "20", env=env, timeout=600
    )
    handler, direct = report["handler_ms"], report["direct_ms"]
    diffs = [h - d for h, d in zip(handler, direct, strict=True)]
    median_diff, p99_diff = statistics.median(diffs), quantile(diffs, 0.99)
    median_handler, median_direct = statistics.median(handler), statistics.median(direct)
    results.data["warm"] = {
        "python": report["python"],
        "pairs": len(diffs),
        "median_diff_ms": median_diff,
        "p99_diff_ms": p99_diff,
        "median_handler_ms": median_handler,
        "median_direct_ms": median_direct,
        "p99_handler_ms": quantile(handler, 0.99),
        "p99_direct_ms": quantile(direct, 0.99),
        "log_chars_per_turn": report["log_chars_per_turn"],
    }
    figure = "1 warm overhead"
    results.row(
        figure,
        "handler - direct, median",
        ms(median_diff),
        f"≤ {BUDGET_WARM_MEDIAN_MS:g} ms",
        median_diff <= BUDGET_WARM_MEDIAN_MS,
    )
    results.row(
        figure,
        "handler - direct, p99",
        ms(p99_diff),
        f"≤ {BUDGET_WARM_P99_MS:g} ms",
        p99_diff <= BUDGET_WARM_P99_MS,
    )
    results.row(
        figure,
        "handler turn / direct call, medians",
        f"{ms(median_handler)} / {ms(median_direct)} (x{median_handler / median_direct:.2f})",
    )

    # Many apps behind one stack: the same turns to one of 50 registered apps, each with its own key secret.
    log(f"1. warm overhead again, turns to the 25th of {REGISTERED_APPS} registered apps")
    apps = {
        f"app-{n}": {
            "difyApiUrl": loopback.dify_url,
            "keySecret": harness.SECRET_NAME,
            "allowedOrigins": [harness.ORIGIN],
        }
        for n in range(1, REGISTERED_APPS + 1)
    }
    many, _ = child(
        layout,
        "child_warm.py",
        str(counts.warm_pairs),
        str(counts.warm_warmup),
        "20",
        env={**env, "APPS": json.dumps(apps), "BENCH_APP": "app-25"},
        timeout=600,
    )
    many_diffs = [h - d for h, d in zip(many["handler_ms"], many["direct_ms"], strict=True)]
    many_median, many_p99 = statistics.median(many_diffs), quantile(many_diffs, 0.99)
    results.data["warm"]["apps_registered"] = REGISTERED_APPS
    results.data["warm"]["median_diff_ms_registered_app"] = many_median
    results.data["warm"]["p99_diff_ms_registered_app"] = many_p99
    results.data["warm"]["median_direct_ms_registered_app"] = statistics.median(many["direct_ms"])
    results.row(
        figure,
        f"handler - direct, median, an app of {REGISTERED_APPS} registered",
        f"{ms(many_median)} (default app {ms(median_diff)}: {ms(many_median - median_diff)} apart)",
    )
    results.row(figure, f"handler - direct, p99, an app of {REGISTERED_APPS} registered", ms(many_p99))

    if counts.all_variants:
        # What the two INFO lines per turn cost: the same run with the log level at WARNING.
        log("1. warm overhead again, POWERTOOLS_LOG_LEVEL=WARNING (what the per-turn log lines cost)")
        quiet, _ = child(
            layout,
            "child_warm.py",
            str(counts.warm_pairs),
            str(counts.warm_warmup),
            "20",
            env={**env, "POWERTOOLS_LOG_LEVEL": "WARNING"},
            timeout=600,
        )
        quiet_diff = statistics.median(
            h - d for h, d in zip(quiet["handler_ms"], quiet["direct_ms"], strict=True)
        )
        results.data["warm"]["median_diff_ms_log_warning"] = quiet_diff
        results.row(
            "1 warm overhead",
            "what-if: median with POWERTOOLS_LOG_LEVEL=WARNING",
            f"{ms(quiet_diff)} (per-turn log lines: {ms(median_diff - quiet_diff)})",
        )

    def per_turn(samples: list[dict]) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for sample in samples:
            for name, value in sample.items():
                totals[name] += value
        return {
            name: totals[name] / len(samples) for name in ("session load", "session save", "counter spend")
        }

    first, continued = per_turn(report["first_turn_calls"]), per_turn(report["continued_turn_calls"])
    results.data["store_calls"] = {"first": first, "continued": continued}
    figure = "1 store calls/turn"
    results.row(
        figure,
        "first turn: session reads, writes",
        f"{count(first['session load'], 'read')}, {count(first['session save'], 'write')}",
        "0 reads, 1 write",
        first["session load"] == 0 and first["session save"] == 1,
    )
    results.row(
        figure,
        "continued turn: session reads, writes",
        f"{count(continued['session load'], 'read')}, {count(continued['session save'], 'write')}",
        "1 read, 0 writes",
        continued["session load"] == 1 and continued["session save"] == 0,
    )
    results.row(figure, "rate counters spent per turn", f"{continued['counter spend']:g}", "(session, IP)")
    registered = per_turn(many["continued_turn_calls"])
    results.data["store_calls"]["continued_registered_app"] = registered
    results.row(
        figure,
        f"continued turn to an app of {REGISTERED_APPS} registered: session reads, writes",
        f"{count(registered['session load'], 'read')}, {count(registered['session save'], 'write')}",
        "1 read, 0 writes",
        registered["session load"] == 1 and registered["session save"] == 0,
    )
    results.detail(
        f"Warm turns ran on Python {report['python']} ({layout.name}); in-memory sessions, rate counters and "
        "idempotency; the key from Secrets Manager (loopback stub), cached."
    )
    results.detail(
        f"  handler p99 {ms(quantile(handler, 0.99))}, direct p99 {ms(quantile(direct, 0.99))}; "
        f"log and metric output {report['log_chars_per_turn']:.0f} characters per turn"
    )


def dynamodb_calls(results: Results, loopback: Loopback) -> None:
    log("1. AWS calls per turn, deployed (SESSIONS_TABLE set, moto)")
    env = harness.relay_env(loopback.dify_url, loopback.aws_url, dynamodb=True)
    for name in ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_DYNAMODB"):
        del env[name]  # moto intercepts the real endpoints
    report, _ = child(lambda_layout.venv_layout(), "child_dynamodb.py", env=env)
    results.data["dynamodb"] = report
    results.detail()
    largest = ", ".join(f"{kind} {size} B" for kind, size in sorted(report["largest_item_bytes"].items()))
    results.detail(
        f"AWS calls per turn when deployed (moto, Python {report['python']}). Largest items written: "
        f"{largest}; all under 1 KB, so each write costs 1 write unit and each strongly consistent read 1 "
        "read unit:"
    )
    for turn in report["turns"]:
        calls = ", ".join(f"{n} {op.split(':')[1]}" for op, n in sorted(turn["calls"].items())) or "none"
        results.detail(f"  {turn['turn']:<42} {turn['status']}  {calls}")
    by_turn = {turn["turn"]: turn["calls"] for turn in report["turns"]}
    continued = by_turn["continued turn 2"]
    first = by_turn["first turn (warm container)"]
    figure = "1 DynamoDB calls/turn"

    def summary(turn: dict) -> str:
        reads = by_turn[turn].get("dynamodb:GetItem", 0)
        return f"{reads} GetItem, {session_writes[turn]} session write(s)"

    session_writes = {turn["turn"]: turn.get("session_writes", 0) for turn in report["turns"]}
    first_turn, continued_turn = "first turn (warm container)", "continued turn 2"
    results.row(
        figure,
        "first turn",
        summary(first_turn),
        "0 GetItem, 1 session write",
        first.get("dynamodb:GetItem", 0) == 0 and session_writes[first_turn] == 1,
    )
    results.row(
        figure,
        "continued turn",
        summary(continued_turn),
        "1 GetItem, 0 session writes",
        continued.get("dynamodb:GetItem", 0) == 1 and session_writes[continued_turn] == 0,
    )
    # Rate counters: one UpdateItem per principal (session, client IP), both windows in it.
    most = max(turn["counter_writes"] for turn in report["turns"])
    results.row(
        figure,
        "rate counter writes, most in any turn",
        f"{most}",
        f"≤ {BUDGET_COUNTER_WRITES}",
        most <= BUDGET_COUNTER_WRITES,
    )


# ---------------------------------------------------------------- 2. cold start


VENV_LABEL = "project venv (dev packages, cached .pyc)"
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")
GROUPS = {
    "aws_lambda_powertools": "Powertools (layer)",
    "urllib3": "urllib3 (layer)",
    "jmespath": "jmespath (layer)",
    "typing_extensions": "typing_extensions (layer)",
    "boto3": "boto3/botocore (runtime SDK)",
    "botocore": "boto3/botocore (runtime SDK)",
    "s3transfer": "boto3/botocore (runtime SDK)",
    "dateutil": "boto3/botocore (runtime SDK)",
    "six": "boto3/botocore (runtime SDK)",
    "relay": "relay code (app, relay)",
    "app": "relay code (app, relay)",
}


def parse_importtime(stderr: str) -> tuple[int, dict[str, int], dict[str, int], dict[str, int]]:
    """From `-X importtime` output: the handler's import (µs), the cumulative and the self µs of each module
    it imported, and the self µs summed per group (layer, runtime SDK, stdlib, relay)."""
    entries = []
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            own, cumulative, indent, name = match.groups()
            entries.append((int(own), int(cumulative), len(indent) // 2, name))
    end = next(i for i, entry in enumerate(entries) if entry[3] == "app" and entry[2] == 0)
    start = end
    while start > 0 and entries[start - 1][2] > 0:
        start -= 1
    subtree = entries[start : end + 1]
    cumulative = {name: cum for _, cum, _, name in subtree}
    own_time = {name: own for own, _, _, name in subtree}
    groups: dict[str, int] = defaultdict(int)
    for own, _, _, name in subtree:
        groups[GROUPS.get(name.split(".")[0], "standard library")] += own
    return entries[end][1], cumulative, own_time, dict(groups)


def cold_start(results: Results, layout, loopback: Loopback, counts: Counts) -> None:
    env = harness.relay_env(loopback.dify_url, loopback.aws_url, dynamodb=True)
    first_label = "as built (byte-code compiled by sam build)" if layout.bench_path_source else VENV_LABEL
    variants = [(first_label, layout, layout.bench_path, True)]
    if counts.all_variants and layout.bench_path_source:
        variants.append(
            ("without byte-code (compiled on every cold start)", layout, layout.bench_path_source, False)
        )
    if counts.all_variants and layout.name != "venv":
        venv = lambda_layout.venv_layout()
        variants.append((VENV_LABEL, venv, venv.bench_path, False))
    figure = "2 cold start"
    for label, where, path, budgeted in variants:
        log(f"2. cold start, {label}: {counts.cold_runs} fresh processes")
        runs = []
        for _ in range(counts.cold_runs):
            spawned = time.monotonic()
            report, _ = child(where, "child_cold.py", env=env, bench_path=path, timeout=60)
            exited = time.monotonic()
            if report["status"] != [200, 200]:
                raise ChildFailed(f"cold start answered {report['status']}")
            runs.append(
                {
                    "total_ms": (report["answered"] - spawned) * 1000,
                    "until_exit_ms": (exited - spawned) * 1000,
                    "interpreter_ms": (report["started"] - spawned) * 1000,
                    "import_ms": (report["imported"] - report["before_import"]) * 1000,
                    "first_turn_ms": (report["answered"] - report["first_start"]) * 1000,
                    "second_turn_ms": (report["second_answered"] - report["answered"]) * 1000,
                    "aws_client_ms": report["aws_client_s"] * 1000,
                    "aws_clients": report["aws_clients"],
                }
            )
        summary = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        summary.update(python=report["python"], runs=len(runs), label=label, where=where.name)
        results.data.setdefault("cold", []).append(summary)
        name = f"{where.name} py{report['python']}, {label}"
        value = (
            f"{ms(summary['total_ms'])} (import {ms(summary['import_ms'])}, "
            f"first turn {ms(summary['first_turn_ms'])})"
        )
        if budgeted:
            results.row(
                figure, name, value, f"≤ {BUDGET_COLD_MS:g} ms", summary["total_ms"] <= BUDGET_COLD_MS
            )
        else:
            results.row(figure, name, value, f"(≤ {BUDGET_COLD_MS:g} ms)")
    primary = results.data["cold"][0]
    results.row(figure, "  of which init: handler imported, AWS clients built", ms(primary["import_ms"]))
    results.row(figure, "  of which the first request (loopback calls in)", ms(primary["first_turn_ms"]))
    cold_floor(results, layout, env, counts)
    aws_clients(results, layout, env, counts)
    results.detail()
    results.detail(
        f"Cold start, {primary['label']}, median of {primary['runs']} processes "
        f"(Python {primary['python']}): "
        f"process start → interpreter ready {ms(primary['interpreter_ms'])}, handler imported "
        f"+{ms(primary['import_ms'])}, first turn answered +{ms(primary['first_turn_ms'])} (of which "
        f"{primary['aws_clients']:g} AWS clients built: {ms(primary['aws_client_ms'])}); "
        f"a second turn then takes {ms(primary['second_turn_ms'])}. (The parent saw the process "
        f"exit {ms(primary['until_exit_ms'])} after starting it: interpreter teardown, which Lambda does "
        "not do per invocation.)"
    )
    importtime(results, layout, env, counts)


def cold_floor(results: Results, layout, env: dict, counts: Counts) -> None:
    """What no relay can beat: a fresh interpreter, urllib3 imported, one POST to the simulator."""
    log(f"2. cold start floor: {counts.cold_runs} fresh processes, urllib3 and one POST to the simulator")
    runs = []
    for _ in range(counts.cold_runs):
        spawned = time.monotonic()
        report, _ = child(layout, "child_floor.py", env=env, timeout=60)
        runs.append(
            {
                "total_ms": (report["answered"] - spawned) * 1000,
                "import_ms": (report["imported"] - report["before_import"]) * 1000,
                "call_ms": (report["answered"] - report["imported"]) * 1000,
            }
        )
    floor = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    results.data["cold_floor"] = floor
    results.row(
        "2 cold start",
        "floor: fresh interpreter, urllib3 imported, one POST to the simulator",
        f"{ms(floor['total_ms'])} (import {ms(floor['import_ms'])}, call {ms(floor['call_ms'])})",
    )


def aws_clients(results: Results, layout, env: dict, counts: Counts) -> None:
    """The DynamoDB and Secrets Manager clients built at init: botocore's session against boto3.client."""
    log(f"2. AWS clients at init: botocore and boto3, {counts.cold_runs} fresh processes each, alternating")
    seconds = {"botocore": [], "boto3": []}
    for _ in range(counts.cold_runs):
        for way in seconds:
            report, _ = child(layout, "child_clients.py", way, env=env, timeout=60)
            seconds[way].append(report["seconds"] * 1000)
    botocore_ms, boto3_ms = (statistics.median(seconds[way]) for way in ("botocore", "boto3"))
    results.data["aws_clients"] = {"botocore_ms": botocore_ms, "boto3_ms": boto3_ms}
    results.row(
        "2 cold start",
        "DynamoDB + Secrets Manager clients, imports included: botocore / boto3",
        f"{ms(botocore_ms)} / {ms(boto3_ms)} (boto3 +{ms(boto3_ms - botocore_ms)})",
    )


def importtime(results: Results, layout, env: dict, counts: Counts) -> None:
    log(f"2. import-time breakdown: {counts.importtime_runs} runs with -X importtime")
    totals, modules, selves, groups = [], defaultdict(list), defaultdict(list), defaultdict(list)
    for _ in range(counts.importtime_runs):
        _, stderr = child(layout, "child_cold.py", env=env, flags=("-X", "importtime"), timeout=60)
        total, cumulative, own_time, by_group = parse_importtime(stderr)
        totals.append(total)
        for name, value in cumulative.items():
            modules[name].append(value)
        for name, value in own_time.items():
            selves[name].append(value)
        for name, value in by_group.items():
            groups[name].append(value)

    def ranked(samples: dict[str, list[int]]) -> list[tuple[float, str]]:
        return sorted(
            ((statistics.median(v) / 1000, k) for k, v in samples.items() if k != "app"), reverse=True
        )

    total_ms = statistics.median(totals) / 1000
    top, top_self, by_group = ranked(modules), ranked(selves), ranked(groups)
    results.data["importtime"] = {
        "import_app_ms": total_ms,
        "top_modules_ms": [(name, round(v, 1)) for v, name in top[:15]],
        "top_self_ms": [(name, round(v, 1)) for v, name in top_self[:10]],
        "by_group_ms": [(name, round(v, 1)) for v, name in by_group],
    }
    results.detail(
        f"Import of the handler under -X importtime ({layout.name} layout, as in the first cold-start row): "
        f"{ms(total_ms)} "
        "(importtime's own overhead included). Self time by origin:"
    )
    for value, name in by_group:
        results.detail(f"  {name:<34} {value:7.1f} ms  {value / total_ms:5.0%}")
    results.detail("Top modules by cumulative import time (nested: a parent includes its children):")
    for value, name in top[:15]:
        results.detail(f"  {name:<64} {value:7.1f} ms")
    results.detail("Largest self times (a module's own compile and execution, without its imports):")
    for value, name in top_self[:10]:
        results.detail(f"  {name:<64} {value:7.1f} ms")


# ---------------------------------------------------------------- 3. memory


def memory(results: Results, layout, loopback: Loopback, counts: Counts) -> None:
    variants = [("in-memory stores", False, True)]
    if counts.all_variants:
        variants.append(("deployed stores (DynamoDB + Secrets Manager stubs)", True, False))
    checkpoint = 100
    figure = "3 memory"
    for label, dynamodb, budgeted in variants:
        log(f"3. memory, {label}: {counts.memory_turns} turns")
        env = harness.relay_env(loopback.dify_url, loopback.aws_url, dynamodb=dynamodb, unlimited=True)
        report, _ = child(layout, "child_memory.py", str(counts.memory_turns), "20", str(checkpoint), env=env)
        rss = {int(k): v for k, v in report["rss_kib"].items()}
        # ru_maxrss and VmHWM are updated lazily by the kernel; the peak is the largest of them and any VmRSS.
        peak_kib = max(report["maxrss_kib"], report["hwm_kib"], *rss.values())
        peak_mib = peak_kib / 1024
        growth = rss[counts.memory_turns] - rss[checkpoint]
        results.data.setdefault("memory", []).append(
            {"label": label, "python": report["python"], "peak_kib": peak_kib, "rss_kib": rss, **report}
        )
        name = f"{label}: peak RSS after {counts.memory_turns} turns"
        budget = f"≤ {BUDGET_PEAK_RSS_MIB:g} MiB"
        if budgeted:
            results.row(figure, name, f"{peak_mib:.1f} MiB", budget, peak_mib <= BUDGET_PEAK_RSS_MIB)
        else:
            results.row(figure, name, f"{peak_mib:.1f} MiB", f"({budget})")
        results.row(
            figure,
            f"{label}: RSS turn {checkpoint} → {counts.memory_turns}",
            f"{rss[checkpoint] / 1024:.1f} → {rss[counts.memory_turns] / 1024:.1f} MiB ({growth:+d} KiB)",
            f"≤ +{BUDGET_RSS_GROWTH_KIB} KiB" if budgeted else f"(≤ +{BUDGET_RSS_GROWTH_KIB} KiB)",
            growth <= BUDGET_RSS_GROWTH_KIB if budgeted else None,
        )


# ---------------------------------------------------------------- 4. stream assembly


def stream(results: Results, layout, counts: Counts) -> None:
    log("4. agent stream assembly: " + ", ".join(f"{e:,} events x{r}" for e, r in counts.stream_plan))
    plan = [f"{events}:{repeats}" for events, repeats in counts.stream_plan]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "POWERTOOLS_SERVICE_NAME": "dify-relay",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    report, _ = child(layout, "child_stream.py", "16384", *plan, env=env)
    figure = "4 stream assembly"
    per_event = {}
    for result in report["results"]:
        seconds = statistics.median(result["seconds"])
        rate = result["events"] / seconds
        per_event[result["events"]] = seconds / result["events"]
        results.row(
            figure,
            f"{result['events']:,} events ({result['bytes'] / MIB:.1f} MiB, 16 KiB reads)",
            f"{rate / 1000:,.0f}k events/s",
            f"≥ {BUDGET_EVENTS_PER_S // 1000}k events/s",
            rate >= BUDGET_EVENTS_PER_S,
        )
    sizes = sorted(per_event)
    ratio = per_event[sizes[-1]] / per_event[sizes[0]]
    results.row(
        figure,
        f"time per event, {sizes[-1]:,} vs {sizes[0]:,} events",
        f"x{ratio:.2f}",
        f"≤ x{BUDGET_LINEARITY:.2f}",
        ratio <= BUDGET_LINEARITY,
    )
    results.data["stream"] = {"python": report["python"], "results": report["results"], "linearity": ratio}


# ---------------------------------------------------------------- 6. streamed turns


def streamed(results: Results, layout, loopback: Loopback, counts: Counts) -> None:
    pairs = counts.streamed_pairs
    log(f"6. streamed turns: {pairs} interleaved pairs to the first event; 1,000 and 10,000 canned events")
    env = harness.relay_env(loopback.dify_url, loopback.aws_url, dynamodb=False, unlimited=True)
    env["KEY_CACHE_SECONDS"] = "86400"
    report, _ = child(
        layout, "child_streamed.py", str(pairs), str(pairs // 10), "20", "1000", "10000", env=env, timeout=600
    )
    figure = "6 streamed turn"
    relay_ms = [s * 1000 for s in report["ttfb"]["relay_s"]]
    direct_ms = [s * 1000 for s in report["ttfb"]["direct_s"]]
    overhead = [r - d for r, d in zip(relay_ms, direct_ms, strict=True)]
    median = statistics.median(overhead)
    results.row(
        figure,
        f"first event, relay - direct, median of {len(overhead)} pairs",
        ms(median),
        f"≤ {BUDGET_FIRST_EVENT_MS:g} ms",
        median <= BUDGET_FIRST_EVENT_MS,
    )
    results.row(figure, "first event, p99 of the pairs", ms(quantile(overhead, 0.99)))
    results.detail(
        f"6. First event: through the relay {ms(statistics.median(relay_ms))} median, straight from the "
        f"simulator {ms(statistics.median(direct_ms))} (to its first data event, on a kept-alive connection)."
    )
    for result in report["per_event"]:
        events = result["events"]
        whole_us = statistics.median(result["whole_s"]) / events * 1e6
        client_us = statistics.median(result["client_s"]) / events * 1e6
        results.row(
            figure, f"relay's own work per event, {events:,} events", f"{whole_us - client_us:.1f} µs"
        )
        results.detail(
            f"6. {events:,} events: {whole_us:.1f} µs per event through the handler, of which reading and "
            f"assembling Dify's stream {client_us:.1f} µs; {result['bytes_out'] / MIB:.1f} MiB written."
        )
    results.data["streamed"] = {
        "python": report["python"],
        "ttfb": report["ttfb"],
        "per_event": report["per_event"],
    }


# ---------------------------------------------------------------- 5. package


def zip_size(directory: Path, prefix: str = "") -> tuple[int, int, int]:
    """(files, unzipped bytes, zipped bytes) of a directory as a deflated zip."""
    buffer, files, unzipped = io.BytesIO(), 0, 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + str(path.relative_to(directory)))
                files += 1
                unzipped += path.stat().st_size
    return files, unzipped, len(buffer.getvalue())


def package(results: Results, workdir: Path) -> None:
    log("5. package sizes: function code, relay layer and dependencies layer, as sam build makes them")
    figure = "5 package"
    try:
        handler = lambda_layout.sam_built("RelayFunction", Path(harness.RELAY), workdir / "RelayFunction")
        shared = lambda_layout.sam_built("RelayCodeLayer", Path(harness.SHARED), workdir / "RelayCodeLayer")
    except subprocess.CalledProcessError as error:
        results.errors.append(f"5 package: the function could not be built ({error.stderr.strip()[-300:]})")
        return
    files, handler_unzipped, handler_zipped = zip_size(handler)
    shared_files, shared_unzipped, shared_zipped = zip_size(shared)
    files += shared_files
    code_unzipped, code_zipped = handler_unzipped + shared_unzipped, handler_zipped + shared_zipped
    results.row(
        figure,
        f"function code and relay layer, byte-code included ({files} files)",
        f"{code_zipped / 1024:.0f} KiB zipped, {code_unzipped / 1024:.0f} KiB unzipped",
    )
    try:
        target = lambda_layout.sam_built(
            "DependenciesLayer", lambda_layout.LAYER_REQUIREMENTS.parent, workdir / "deps"
        )
        target, how = target / "python", "arm64, py3.13, byte-code included"
    except subprocess.CalledProcessError as error:
        built = ROOT / ".aws-sam" / "build" / "DependenciesLayer" / "python"
        if not built.is_dir():
            results.errors.append(
                f"5 package: the layer could not be installed ({error.stderr.strip()[-300:]})"
            )
            return
        log("5. the layer could not be installed; measuring .aws-sam/build (the last `make build`)")
        target, how = built, "from .aws-sam/build"
    files, layer_unzipped, layer_zipped = zip_size(target, "python/")
    results.row(
        figure,
        f"layer as deployed ({how}, {files} files)",
        f"{layer_zipped / MIB:.2f} MiB zipped, {layer_unzipped / MIB:.2f} MiB unzipped",
    )
    total_unzipped = code_unzipped + layer_unzipped
    results.row(
        figure,
        "function + layer, unzipped",
        f"{total_unzipped / MIB:.2f} MiB",
        "≤ 250 MiB (Lambda quota)",
        total_unzipped <= LAMBDA_UNZIPPED_LIMIT,
    )
    results.row(
        figure,
        "largest zip (layer)",
        f"{layer_zipped / MIB:.2f} MiB",
        "≤ 50 MiB (direct upload quota)",
        max(layer_zipped, code_zipped) <= LAMBDA_ZIPPED_LIMIT,
    )
    parts = []
    for path in sorted(target.iterdir()):
        if path.is_dir() and not path.name.endswith((".dist-info", ".data")) and path.name != "bin":
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            parts.append((size, path.name))
    parts.sort(reverse=True)
    results.data["package"] = {
        "code_zipped": code_zipped,
        "code_unzipped": code_unzipped,
        "layer_zipped": layer_zipped,
        "layer_unzipped": layer_unzipped,
        "layer_parts": [(name, size) for size, name in parts],
    }
    results.detail()
    results.detail(
        "Layer contents, unzipped: " + ", ".join(f"{name} {size / MIB:.2f} MiB" for size, name in parts)
    )
    if parts and parts[0][1] == "aws_lambda_powertools":
        powertools = target / "aws_lambda_powertools"
        subparts = []
        for path in powertools.iterdir():
            if path.is_dir() and path.name != "__pycache__":
                for sub in [path] if path.name != "utilities" else [p for p in path.iterdir() if p.is_dir()]:
                    size = sum(p.stat().st_size for p in sub.rglob("*") if p.is_file())
                    subparts.append((size, str(sub.relative_to(powertools))))
        subparts.sort(reverse=True)
        results.detail(
            "  largest parts of Powertools: "
            + ", ".join(f"{name} {size / MIB:.2f} MiB" for size, name in subparts[:8])
        )


# ---------------------------------------------------------------- cost


def costs(results: Results) -> None:
    warm_data, dynamodb = results.data.get("warm"), results.data.get("dynamodb")
    if not warm_data or not dynamodb:
        return
    by_turn = {turn["turn"]: turn["calls"] for turn in dynamodb["turns"]}

    def units(calls: dict) -> tuple[int, int]:
        writes = sum(
            n for op, n in calls.items() if op.split(":")[1] in ("PutItem", "UpdateItem", "DeleteItem")
        )
        return writes, calls.get("dynamodb:GetItem", 0)

    writes, reads = units(by_turn["continued turn 2"])
    first_writes, first_reads = units(by_turn["first turn (warm container)"])
    overhead = warm_data["median_diff_ms"]
    log_bytes = warm_data["log_chars_per_turn"]
    table = cost.table(overhead_ms=overhead, writes=writes, reads=reads, log_bytes=log_bytes)
    results.data["cost"] = [vars(row) | {"total": row.total} for row in table]
    results.detail()
    results.detail(
        "Cost of 1M continued turns, USD, us-east-1 list prices (bench/cost.py), arm64; billed duration = "
        f"Dify time + {ms(overhead)} measured overhead; DynamoDB {writes} write + {reads} read units per "
        f"turn (a first turn: {first_writes} + {first_reads}); logs {log_bytes:.0f} bytes per turn:"
    )
    results.detail(
        f"  {'Dify':>5} {'memory':>7} {'Lambda time':>12} {'requests':>9} {'REST API':>9} {'DynamoDB':>9} "
        f"{'logs':>6} {'total':>8}"
    )
    for row in table:
        results.detail(
            f"  {row.dify_seconds:>4.0f}s {row.memory_mb:>5} MB {row.lambda_duration:>12.2f} "
            f"{row.lambda_requests:>9.2f} {row.api_gateway:>9.2f} {row.dynamodb:>9.2f} {row.logs:>6.2f} "
            f"{row.total:>8.2f}"
        )


# ---------------------------------------------------------------- the run


def machine() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "machine": platform.machine(),
        "parent_python": platform.python_version(),
    }


def print_table(rows: list[Row]) -> None:
    headers = ("figure", "measure", "value", "budget", "result")
    cells = [(r.figure, r.measure, r.value, r.budget, r.verdict) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of about 20 s")
    parser.add_argument("--json", metavar="PATH", help="also write every measured figure as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any figure misses its budget")
    parser.add_argument(
        "--venv-only",
        action="store_true",
        help="run every child in the project venv, not a Lambda-like layout",
    )
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else FULL
    started = time.monotonic()
    results = Results()
    results.data["machine"] = machine()
    with tempfile.TemporaryDirectory(prefix="dify-relay-bench-") as tmp:
        workdir = Path(tmp)
        layout = lambda_layout.venv_layout()
        python = None if args.venv_only else lambda_layout.find_python()
        if python:
            try:
                layout = lambda_layout.build(python, workdir, log=log)
            except (OSError, subprocess.CalledProcessError) as error:
                reason = getattr(error, "stderr", None) or str(error)
                log(f"no Lambda-like layout ({reason.strip()[-300:]}); measuring in the project venv")
        else:
            log("no python3.13 found (or --venv-only): measuring in the project venv")
        results.data["layout"] = {"name": layout.name, "python": layout.version}
        log(f"the measured processes run in the {layout.name} layout on Python {layout.version}")
        with Loopback() as loopback:
            warm(results, layout, loopback, counts)
            dynamodb_calls(results, loopback)
            cold_start(results, layout, loopback, counts)
            memory(results, layout, loopback, counts)
            streamed(results, layout, loopback, counts)
        stream(results, layout, counts)
        package(results, workdir)
    costs(results)
    elapsed = time.monotonic() - started
    info = results.data["machine"]
    print(
        f"Dify Relay benchmark, {info['date']}: {info['nproc']} x {info['cpu']} ({info['machine']}); "
        f"children on Python {layout.version} ({layout.name}), parent on Python {info['parent_python']}; "
        f"{'quick' if args.quick else 'full'} run, {elapsed:.0f} s"
    )
    print()
    print_table(results.rows)
    print()
    print("\n".join(results.details))
    if args.json:
        results.data["rows"] = [vars(r) | {"verdict": r.verdict} for r in results.rows]
        Path(args.json).write_text(json.dumps(results.data, indent=1, default=str) + "\n")
    for error in results.errors:
        print(f"NOT MEASURED: {error}")
    if results.errors:
        return 2
    missed = [r for r in results.rows if r.passed is False]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
