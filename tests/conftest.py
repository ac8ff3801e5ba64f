"""Fixtures shared by several test modules; tests marked ``gpu`` are skipped where torch sees no CUDA device.

Tests that start Ray, run ``nas`` in a subprocess or train networks are marked ``integration`` here, in one
place: every test of the modules below, and any test that takes a fixture that starts Ray or runs a search
(a test elsewhere that exports or trains networks carries the mark itself). ``pytest -m "not integration"``
runs the fast unit tests alone (well under a minute); the default run takes both (``slow`` ones aside).
"""

import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _own_latency_cache(tmp_path_factory):
    """Latency parts timed by the tests (a space with a latency budget, ``nas lut build``) go to a table of the
    test session, never to the user's ``~/.cache/nas/lut`` (subprocesses inherit the variable)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NAS_CACHE_DIR", str(tmp_path_factory.mktemp("nas-latency-cache")))
    yield
    mp.undo()


@pytest.fixture
def one_thread():
    """torch on one thread for the test: small models run as fast, and parallel jobs do not fight for cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def cost_study_template(tmp_path_factory):
    """A real study directory from a 6-trial cost-only search of tiny.yaml (storage and records; no training, no
    Ray), made once: tests take a copy (``cost_study``)."""
    from nas.search.driver import SearchOptions, run_search

    out = tmp_path_factory.mktemp("studies")
    s = run_search(SearchOptions(space=str(REPO / "search_spaces" / "tiny.yaml"), trials=6, out=out,
                                 objective="cost", wandb="disabled"))
    assert len(s.records) == 6
    return s.study_dir


@pytest.fixture
def cost_study(cost_study_template, tmp_path):
    """A copy of ``cost_study_template`` under ``tmp_path/results``, for a test to change or resume."""
    d = tmp_path / "results" / cost_study_template.name
    shutil.copytree(cost_study_template, d)
    return d


@pytest.fixture(scope="module")
def local_ray():
    """A local 2-CPU Ray for one test module, started as ``nas search`` starts it; shut down after the module
    unless it was already running."""
    import ray

    from nas.search import tuning

    started = tuning.start_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


#: Modules whose tests start searches, Ray, subprocesses or training runs.
INTEGRATION_MODULES = frozenset({
    "test_bad_input", "test_bench_gpu", "test_benchmarks", "test_cli", "test_cluster", "test_export",
    "test_faults", "test_fidelity", "test_final_eval", "test_gpu_packing", "test_gpu_real", "test_hostile_faults",
    "test_latency_cache", "test_placement", "test_search", "test_search_events", "test_search_logs",
    "test_search_objectives", "test_space_cli", "test_tables", "test_tracking", "test_train",
})
#: Fixtures that start Ray or run a search.
_INTEGRATION_FIXTURES = frozenset({"local_ray", "gpu_ray", "cost_study"})


def _integration(item) -> bool:
    module = item.module.__name__.rpartition(".")[2] if getattr(item, "module", None) else ""
    return module in INTEGRATION_MODULES or bool(_INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _integration(item):
            item.add_marker(pytest.mark.integration)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch sees none)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
