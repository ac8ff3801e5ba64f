"""The driver's listeners, its silence, the sampler registry and option errors (no Ray: cost-only searches)."""

from __future__ import annotations

import logging
import typing
from functools import partial

import pytest
from _cli import run_cli

from nas.errors import OptionError
from nas.search import budgets
from nas.search.driver import SearchOptions, run_search
from nas.search.events import SearchListener
from nas.search.samplers import make_sampler, sampler_names
from nas.space import SearchSettings, load_space

OPTS = dict(space="tiny.yaml", objective="cost", wandb="disabled")


class Recorder(SearchListener):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def search_started(self, info):
        self.events.append(("started", info.study, len(info.book.records)))

    def trial_finished(self, record):
        self.events.append(("finished", record.number, record.status))

    def search_finished(self, summary):
        self.events.append(("done", len(summary.records)))


def test_the_driver_never_prints(tmp_path, capfd):
    s = run_search(SearchOptions(trials=12, out=tmp_path, **OPTS))
    assert len(s.records) == 12
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_listeners_see_the_search_in_order_and_a_failing_one_is_disabled(tmp_path, caplog):
    class Broken(SearchListener):
        calls = 0

        def trial_finished(self, record):
            Broken.calls += 1
            raise RuntimeError("no display today")

    rec, broken = Recorder(), Broken()
    with caplog.at_level(logging.WARNING, logger="nas.search.events"):
        s = run_search(SearchOptions(trials=10, out=tmp_path, **OPTS), listeners=[broken, rec])
    assert len(s.records) == 10 and s.new_trials == 10  # the search finished
    assert Broken.calls == 1  # disabled after its first error
    warnings = [r.getMessage() for r in caplog.records if "disabled after an error" in r.getMessage()]
    assert warnings == ["Broken disabled after an error: RuntimeError: no display today"]
    assert rec.events[0] == ("started", "tiny", 0) and rec.events[-1] == ("done", 10)
    assert [e[1:] for e in rec.events[1:-1]] == [(r.number, r.status) for r in s.records]

    rec2 = Recorder()  # a resumed study: the listener starts with the records already there
    run_search(SearchOptions(trials=13, out=tmp_path, **OPTS), listeners=[rec2])
    assert rec2.events[0] == ("started", "tiny", 10) and len(rec2.events) == 1 + 3 + 1


def test_sampler_registry_matches_the_space_schema():
    allowed = typing.get_args(SearchSettings.model_fields["sampler"].annotation)
    assert set(sampler_names()) == set(allowed)
    space = load_space("tiny.yaml")  # the predictor sampler looks at architectures and their costs
    for name in sampler_names():
        assert make_sampler(name, seed=0, trials=20, concurrency=2, space=space,
                            cost_fn=partial(budgets.target_cost, space)) is not None
    with pytest.raises(OptionError) as e:
        make_sampler("cmaes", 0, 20)
    assert e.value.field == "sampler" and str(e.value).startswith("sampler: 'cmaes' is not one of nsga2")


@pytest.mark.parametrize("flags, line", [
    (["--sampler", "bogus"], "error: --sampler: 'bogus' is not one of nsga2, tpe, gp, random, predictor"),
    (["--storage", "redis"], "error: --storage: 'redis' is not one of sqlite, journal"),
    (["--wandb", "maybe"], "error: --wandb: 'maybe' is not one of online, offline, disabled"),
    (["--objective", "speed"], "error: --objective: 'speed' is not one of train, cost"),
    (["--study", ".."], "error: --study: '..' is not a usable study name (one directory name)"),
    (["--address", "nohost"],
     "error: --address: 'nohost' is not auto or HOST:PORT of a Ray head (its GCS, port 6379 by default)"),
    (["--gpus-per-trial", "1.5"], "error: --gpus-per-trial: above 1 a trial takes whole GPUs (Ray's rule), got 1.5"),
    (["--gpus-per-trial", "-1"], "error: --gpus-per-trial: must be in [0, 64], got -1.0"),
    (["--cpus-per-trial", "0"], "error: --cpus-per-trial: must be > 0, got 0.0"),
    (["--scheduler", "fifo"], "error: --scheduler: 'fifo' is not one of asha, none"),
    (["--grace-period", "0"], "error: --grace-period: must be > 0, got 0"),
])
def test_the_cli_prints_an_option_error_with_its_flag(flags, line, tmp_path, monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "search", "--space", "tiny.yaml", "--out", str(tmp_path), *flags)
    assert code == 2 and err.strip() == line and out == ""
