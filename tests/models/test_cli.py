"""``workbench models list | show | lineage`` through typer's CliRunner and the real entry point."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from tests.models.conftest import RANGE
from workbench import models
from workbench.cli import app, main
from workbench.config import Settings


@pytest.fixture
def registry(home: Settings) -> Settings:
    """item_vectors/1..2 and ranker/1..3; ranker/1 and /2 use item_vectors/1, so they are stale."""
    from workbench.features import aggregations as agg
    from workbench.features import windows as win
    from workbench.features.definition import SESSION, Feature

    feature = Feature("views_1m", SESSION, win.Tumbling(size_ms=60_000), agg.Count())
    e1 = models.register("item_vectors", {"v": 1}, kind="embedding", data_range=RANGE)
    r1 = models.register("ranker", {"w": 1}, kind="ranking", depends_on=e1, data_range=RANGE,
                         feature_hashes=[feature, "ffffffffffffffff"], metrics={"hr@20": 0.31, "mrr@20": 0.12})
    r2 = models.register("ranker", {"w": 2}, kind="ranking", parent=r1, depends_on=e1, metrics={"hr@20": 0.33})
    e2 = models.register("item_vectors", {"v": 2}, kind="embedding", parent=e1)
    models.register("ranker", {"w": 3}, kind="ranking", parent=r2, depends_on=e2, description="daily\nupdate")
    models.set_alias("ranker", "champion", 2)
    return home


def test_list_shows_every_version_and_the_stale_flag(registry: Settings) -> None:
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["item_vectors/2", "item_vectors/1", "ranker/3", "ranker/2",
                                                   "ranker/1"]
    assert lines[2].split()[1] == "ranking" and "uses item_vectors/2" in lines[2] and "STALE" not in lines[2]
    assert lines[3].endswith("@champion  STALE: item_vectors/2 is newer")
    assert "hr@20=0.31 mrr@20=0.12" in lines[4] and "STALE: item_vectors/2 is newer" in lines[4]
    only = CliRunner().invoke(app, ["models", "list", "item_vectors"])
    assert only.output.splitlines() == lines[:2]


def test_show_prints_the_version_as_json(registry: Settings) -> None:
    result = CliRunner().invoke(app, ["models", "show", "ranker@champion"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["ref"] == "ranker/2" and doc["parent"] == "ranker/1" and doc["aliases"] == ["champion"]
    assert doc["stale"] is True and doc["stale_because"] == ["item_vectors/2"]
    assert doc["depends_on"] == {"item_vectors": 1} and doc["metrics"] == {"hr@20": 0.33}
    assert json.loads(CliRunner().invoke(app, ["models", "show", "ranker"]).output)["version"] == 3


def test_lineage_prints_the_chain(registry: Settings) -> None:
    result = CliRunner().invoke(app, ["models", "lineage", "ranker"])
    assert result.exit_code == 0, result.output
    out = result.output
    heads = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert heads[:3] == ["ranker/3", "ranker/2", "ranker/1"]
    assert "parent:      ranker/2" in out and "parent:      - (root)" in out
    assert "depends on:  item_vectors/2\n" in out
    assert "depends on:  item_vectors/1  (STALE: item_vectors/2 newer)" in out
    assert "data range:  events p0 [0, 999] p1 [10, 870]; event time 2026-11-27 17:20:00 .. " \
           "2026-11-28 17:20:00 UTC" in out
    assert "(stored), ffffffffffffffff (not stored here)" in out
    assert "metrics:     hr@20=0.31 mrr@20=0.12" in out
    assert "description: daily update" in out
    assert out.rstrip().endswith("workbench.features.definition.load(HASH)")


@pytest.mark.parametrize("args, message", [
    (["models", "show", "ghost"], "error: no model named 'ghost'; `workbench models list` shows them"),
    (["models", "lineage", "ranker/9"], "error: model 'ranker' has no version 9; "
                                        "`workbench models list ranker` lists its versions"),
    (["models", "list", "ghost"], "error: no model named 'ghost'; `workbench models list` shows them"),
    (["models", "show", "bad/name/2"], "error: bad model reference 'bad/name/2': use NAME, NAME/VERSION or NAME@ALIAS"),
])
def test_unknown_names_exit_1_with_one_line(home: Settings, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], args: list[str],
                                            message: str) -> None:
    models.register("ranker", {"w": 1}, kind="ranking")
    monkeypatch.setattr(sys, "argv", ["workbench", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(message) and err.count("\n") == 1


def test_an_empty_store(home: Settings) -> None:
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0 and result.output == "no models yet\n"
