"""``workbench bench features`` with tiny parameters: the JSON it returns has every figure (no timings asserted)."""

from __future__ import annotations

import json

import pytest

from workbench.config import Settings

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_bench_features_returns_every_figure(broker: Settings) -> None:
    from workbench.bench.features import run

    result = run(stream_events=300, rounds=2, backfill_events=3000, replay_events=200, month_days=1)
    json.dumps(result)  # printable as the CLI prints it
    assert set(result) == {"benchmark", "feature", "machine", "stream", "backfill", "incremental"}
    assert {"cpu_count", "load_average_before", "load_average_after"} <= set(result["machine"])
    stream = result["stream"]
    assert stream["pipeline"]["updates"] == 300 and stream["quixstreams_floor"]["updates"] == 300
    assert len(stream["pipeline"]["events_per_cpu_s_by_round"]) == 2
    assert {"events_per_s", "events_per_cpu_s", "cpu_s"} <= set(stream["pipeline"])
    assert {"events_per_s", "events_per_cpu_s", "cpu_s"} <= set(stream["raw_json_consumer"])
    assert "ratio_to_raw_per_cpu_s" in stream
    backfill = result["backfill"]
    assert {"backfill_events_per_s", "replay_events_per_s", "ratio"} <= set(backfill)
    assert backfill["replay_prefix_matches"] is True
    incremental = result["incremental"]
    assert {"incremental_cpu_s", "recompute_cpu_s", "ratio"} <= set(incremental)
    assert incremental["same_values"] is True
