"""What the benchmarks say of their samples, said one way."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile; NaN when there is nothing to rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_latencies(latencies: list[float], counts: str, lost: int) -> None:
    """A line for the reader, then the last line of figures: ``counts`` (e.g.
    "clients=200 alerts=100") followed by p50, p99 and the losses."""
    if latencies:
        print(f"mean={statistics.mean(latencies):.1f} ms max={max(latencies):.1f} ms "
              f"p90={percentile(latencies, 0.9):.1f} ms")
    print(f"{counts} p50_ms={percentile(latencies, 0.5):.0f} "
          f"p99_ms={percentile(latencies, 0.99):.0f} lost={lost}")
