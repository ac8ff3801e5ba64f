"""Fixtures shared by several test modules; tests marked ``gpu`` are skipped where torch sees no CUDA device."""

import pytest
import torch


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


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch sees none)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
