"""Summaries of samples, the ratio table on stdout and the JSON record."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ENGINE = "engine API"
"""The baseline every ratio is taken against: the raw Engine API, same image and command."""
CLI = "docker CLI"


@dataclass
class Series:
    """Samples of one variant of one figure, in seconds."""

    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ms = [s * 1000 for s in self.samples]
        return {
            "n": len(ms),
            "p50_ms": _round(percentile(ms, 50)),
            "p90_ms": _round(percentile(ms, 90)),
            "mean_ms": _round(statistics.fmean(ms) if ms else math.nan),
            "min_ms": _round(min(ms) if ms else math.nan),
            "max_ms": _round(max(ms) if ms else math.nan),
            "samples_ms": [_round(v) for v in ms],
            "errors": self.errors,
        }


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 1)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return round(numerator / denominator, 2)


def figure_record(title: str, variants: dict[str, tuple[str, Series]]) -> dict[str, Any]:
    """`variants`: key -> (description, series). Ratios are of medians."""
    summaries = {key: {"label": label, **s.summary()} for key, (label, s) in variants.items()}
    engine = summaries.get(ENGINE, {}).get("p50_ms")
    cli = summaries.get(CLI, {}).get("p50_ms")
    for summary in summaries.values():
        summary["p50_ratio_vs_engine_api"] = ratio(summary["p50_ms"], engine)
        summary["p50_ratio_vs_docker_cli"] = ratio(summary["p50_ms"], cli)
    return {"title": title, "variants": summaries}


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _table(
    header: str, figures: dict[str, dict[str, Any]], row: Callable[[str, dict[str, Any]], str]
) -> str:
    """`header`, a rule, then each figure's title and `row(variant, summary)` per variant."""
    lines = [header, "-" * len(header)]
    for figure in figures.values():
        lines.append(figure["title"])
        lines += [row(variant, summary) for variant, summary in figure["variants"].items()]
    return "\n".join(lines)


def _count(summary: dict[str, Any]) -> str:
    """How many samples, and `!N` when N failed."""
    errors = len(summary["errors"])
    return f"{summary['n']}" + (f"!{errors}" if errors else "")


def render_table(figures: dict[str, dict[str, Any]]) -> str:
    header = (
        f"{'figure / variant':<52} {'n':>3} {'p50 ms':>8} {'p90 ms':>8} {'mean ms':>8}"
        f" {'÷engine':>8} {'÷CLI':>6}"
    )

    def row(_: str, summary: dict[str, Any]) -> str:
        label = "  " + summary["label"]
        return (
            f"{label:<52} {_count(summary):>3} {_cell(summary['p50_ms'], '.0f'):>8}"
            f" {_cell(summary['p90_ms'], '.0f'):>8} {_cell(summary['mean_ms'], '.0f'):>8}"
            f" {_cell(summary['p50_ratio_vs_engine_api'], '.2f'):>8}"
            f" {_cell(summary['p50_ratio_vs_docker_cli'], '.2f'):>6}"
        )

    return _table(header, figures, row)


def render_target_table(figures: dict[str, dict[str, Any]], *, berth: str, target: float) -> str:
    """The table with the docker CLI as the baseline: ratios to it, then to the engine API,
    and whether `berth`'s variant is within `target` times the docker CLI's p50."""
    header = (
        f"{'figure / variant':<48} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'mean ms':>8}"
        f" {'÷docker':>8} {'÷API':>6} {'target':>8}"
    )

    def row(variant: str, s: dict[str, Any]) -> str:
        verdict = ""
        if variant == berth and s["p50_ratio_vs_docker_cli"] is not None:
            ok = s["p50_ratio_vs_docker_cli"] <= target
            verdict = f"<={target:g} " + ("ok" if ok else "MISS")
        return (
            f"  {s['label']:<46} {_count(s):>4} {_cell(s['p50_ms'], '.0f'):>8}"
            f" {_cell(s['p90_ms'], '.0f'):>8} {_cell(s['mean_ms'], '.0f'):>8}"
            f" {_cell(s['p50_ratio_vs_docker_cli'], '.2f'):>8}"
            f" {_cell(s['p50_ratio_vs_engine_api'], '.2f'):>6} {verdict:>8}"
        )

    return _table(header, figures, row)


GOAL_RATIO = 1.3
"""The target for berth's start latency: at most this times the docker CLI's, per figure."""
GOAL_FIGURES = ("service_running", "job_exit")


def goal_record(
    figures: dict[str, dict[str, Any]],
    *,
    berth: str,
    spec: str,
    spec_polled: str,
    spec_bridge: str,
    compared: str,
) -> dict[str, Any]:
    """berth's p50 over the docker CLI's for each goal figure, whether it is met, and the
    factors whose product is berth over the plain engine API: berth over the engine API with
    berth's container spec while berth answers a client's polls (the control plane), that
    over the same without the polls (answering them), the spec over the same on the default
    bridge (the per-user network), and that over the plain engine API (limits and init)."""
    record: dict[str, Any] = {"max_ratio": GOAL_RATIO, "figures": {}}
    for key in GOAL_FIGURES:
        variants = figures.get(key, {}).get("variants", {})
        p50 = {name: variants.get(name, {}).get("p50_ms") for name in variants}.get
        value = ratio(p50(berth), p50(CLI))
        record["figures"][key] = {
            "title": figures.get(key, {}).get("title", key),
            "berth_p50_ms": p50(berth),
            "docker_cli_p50_ms": p50(CLI),
            "ratio": value,
            "met": None if value is None else value <= GOAL_RATIO,
            "control_plane": ratio(p50(berth), p50(spec_polled)),
            "answering_polls": ratio(p50(spec_polled), p50(spec)),
            "per_user_network": ratio(p50(spec), p50(spec_bridge)),
            "limits": ratio(p50(spec_bridge), p50(ENGINE)),
            "compared_p50_ms": p50(compared),
            "compared_ratio": ratio(p50(compared), p50(CLI)),
        }
    return record


def render_goal(goal: dict[str, Any]) -> str:
    lines = [f"goal: berth ÷ docker CLI <= {goal['max_ratio']:.2f} (p50 over p50, same run)"]
    for entry in goal["figures"].values():
        if entry["ratio"] is None:
            lines.append(f"  {entry['title']:<40} no docker CLI figure (--no-cli or no docker)")
            continue
        verdict = "met" if entry["met"] else "NOT met"
        lines.append(
            f"  {entry['title']:<40} {entry['berth_p50_ms']:>6.0f} ms ÷"
            f" {entry['docker_cli_p50_ms']:>6.0f} ms = {entry['ratio']:.2f}  {verdict}"
        )
        if entry["compared_ratio"] is not None:
            lines.append(
                f"    --compare-src build: {entry['compared_p50_ms']:.0f} ms ÷"
                f" {entry['docker_cli_p50_ms']:.0f} ms = {entry['compared_ratio']:.2f}"
            )
        factors = (
            ("control plane", "control_plane"),
            ("answering polls", "answering_polls"),
            ("per-user network", "per_user_network"),
            ("limits", "limits"),
        )
        lines.append(
            "    " + ", ".join(f"{name} {_cell(entry[key], '.2f')}x" for name, key in factors)
        )
    lines.append(
        "  (control plane: berth ÷ engine API with berth's spec while berth answers polls;"
        " answering polls: that ÷ the same without;\n   per-user network: berth's spec ÷ the"
        " same on the default bridge; limits: default bridge ÷ plain engine API)"
    )
    return "\n".join(lines)


def render_breakdown(breakdown: dict[str, dict[str, Series]]) -> str:
    lines = ["berth, where the time goes (medians, ms from the POST; wall clock, same host):"]
    for title, steps in breakdown.items():
        lines.append(f"  {title}")
        for step, series in steps.items():
            value = _round(percentile([s * 1000 for s in series.samples], 50))
            lines.append(f"    {step:<58} {_cell(value, '.0f'):>6}")
    return "\n".join(lines)
