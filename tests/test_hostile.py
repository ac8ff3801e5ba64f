"""Study directories, spaces, genotypes and addresses from elsewhere (issue 21): every hostile input is one line.

Each case is what a hostile or unlucky user can hand ``nas``: a crafted ``trials.jsonl`` (a weights path to
``/etc/passwd``, a string where MACs belong, trial 2000 in a study of 6, a torn last line), corrupt derived
files (``baselines.json``), YAML alias bombs, numbers no space can hold, genotypes that need hundreds of GB,
a port where no Ray cluster listens, an output path that is a file, a full disk, and SIGTERM while a search
shuts down. Every case asserts exit 2 with one ``error:`` line naming the file and the field (or, where the
input is recoverable, the recovery and what was said), nothing written outside the study (or nothing at
all), the earlier records byte for byte, and a bounded time. The fuzzing of the readers is in
``tests/test_hostile_fuzz.py``, the disk-full and signal cases in ``tests/test_hostile_faults.py``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synth_study import make_study  # noqa: E402
from test_bad_input import assert_one_line, run_main, snapshot  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "search_spaces" / "tiny.yaml"
MIXNET_S = REPO / "search_spaces" / "reference" / "mixnet_s.yaml"
FAST_S = 5.0  # a hostile input is refused in well under this (the machine may be busy)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def refused(args: list, monkeypatch, capsys, *needles) -> tuple[str, float]:
    """``nas ARGS`` exits 2 with one line naming every needle, within FAST_S; returns (line, seconds)."""
    t0 = time.perf_counter()
    code, err, _ = run_main(args, monkeypatch, capsys)
    took = time.perf_counter() - t0
    assert code == 2, err
    line = assert_one_line(err, *needles)
    assert took < FAST_S, f"took {took:.1f} s: {line}"
    return line, took


# -- crafted records: paths out of the study ---------------------------------------------------------------


@pytest.fixture
def synth(tmp_path: Path) -> Path:
    """A study with trained records (the synthetic one of the export tests)."""
    return make_study(tmp_path / "results", n=12)


def _edit_records(study: Path, edit) -> None:
    p = study / "trials.jsonl"
    recs = [json.loads(line) for line in p.read_text().splitlines()]
    for r in recs:
        edit(r)
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))


@pytest.mark.parametrize("weights", ["/etc/passwd", "../outside.pt", "weights/../../outside.pt"])
def test_export_refuses_a_weights_path_out_of_the_study(weights, synth, tmp_path, monkeypatch, capsys):
    (tmp_path / "results" / "outside.pt").write_bytes(b"secret")
    _edit_records(synth, lambda r: r.update(weights=weights))
    before = snapshot(tmp_path)
    refused(["export-best", "--study", synth, "--no-measure"], monkeypatch, capsys, "trials.jsonl", "weights")
    assert snapshot(tmp_path) == before  # no family/ at all


def test_export_refuses_a_symlink_out_of_the_study(synth, tmp_path, monkeypatch, capsys):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (synth / "weights").mkdir()
    for n in range(12):
        (synth / "weights" / f"{n}.pt").symlink_to(outside)
    before = snapshot(tmp_path)
    line, _ = refused(["export-best", "--study", synth, "--no-measure"], monkeypatch, capsys, "weights",
                      "outside the study")
    assert snapshot(tmp_path) == before


@pytest.mark.integration  # exports TorchScript and ONNX
def test_weights_inside_the_study_are_still_exported(synth, tmp_path, monkeypatch, capsys):
    (synth / "kept").mkdir()
    (synth / "kept" / "w.pt").write_bytes(b"weights")
    _edit_records(synth, lambda r: r.update(weights="kept/w.pt"))
    code, err, _ = run_main(["export-best", "--study", synth, "--no-measure"], monkeypatch, capsys)
    assert code == 0, err
    members = json.loads((synth / "family" / "family.json").read_text())["members"]
    trained = [m["tier"] for m in members if m["source"] == "trained"]
    assert trained
    assert all((synth / "family" / t / "proxy_weights.pt").read_bytes() == b"weights" for t in trained)


# -- crafted records: wrong types and numbers --------------------------------------------------------------


@pytest.mark.parametrize("field, value, needle", [
    ("macs", "lots", "macs"), ("number", -3, "negative"), ("accuracy", [1], "accuracy"),
    ("history", [{"epoch": "x"}], "history[0]"), ("history", [{"epoch": 1e308, "val_accuracy": 0.5}], "history[0]"),
    ("violations", {"macs": "big"}, "violations"), ("tier", 3, "tier"),
])
@pytest.mark.parametrize("command", ["pareto", "plot", "export-best"])
def test_readers_refuse_a_record_of_the_wrong_type(command, field, value, needle, synth, tmp_path, monkeypatch,
                                                   capsys):
    def edit(r):
        if r["number"] == 3:
            r[field] = value
    _edit_records(synth, edit)
    before = snapshot(tmp_path)
    extra = ["--no-measure"] if command == "export-best" else []
    refused([command, "--study", synth, *extra], monkeypatch, capsys, "trials.jsonl", "line 4", needle)
    assert snapshot(tmp_path) == before


def _resume(study: Path, *more: str) -> list:
    return ["search", "--space", TINY, "--out", study.parent, "--objective", "cost", "--trials", "9", *more]


@pytest.mark.parametrize("number, needle", [(2000, "beyond the study"), (-1, "negative")])
def test_resume_refuses_a_record_numbered_out_of_the_study(number, needle, cost_study, tmp_path, monkeypatch,
                                                            capsys):
    p = cost_study / "trials.jsonl"
    last = json.loads(p.read_text().splitlines()[-1])
    p.write_text(p.read_text() + json.dumps({**last, "number": number}) + "\n")
    before = snapshot(tmp_path)
    refused(_resume(cost_study), monkeypatch, capsys, "trials.jsonl", needle)
    assert snapshot(tmp_path) == before  # no failed trials invented in the storage


def test_resume_refuses_a_deleted_trials_file_beside_its_storage(cost_study, tmp_path, monkeypatch, capsys):
    (cost_study / "trials.jsonl").unlink()
    before = snapshot(tmp_path)
    refused(_resume(cost_study), monkeypatch, capsys, "trials.jsonl", "is missing", "6 finished trials")
    assert snapshot(tmp_path) == before


def test_resume_refuses_records_of_another_study(cost_study, tmp_path, monkeypatch, capsys):
    p = cost_study / "trials.jsonl"
    recs = [json.loads(line) for line in p.read_text().splitlines()]
    recs[1]["hash"], recs[2]["hash"] = recs[2]["hash"], recs[1]["hash"]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    before = snapshot(tmp_path)
    refused(_resume(cost_study), monkeypatch, capsys, "trials.jsonl", "trial 1: hash")
    assert snapshot(tmp_path) == before


def test_a_torn_last_record_is_cut_and_the_search_resumes(cost_study, monkeypatch, capsys):
    """What a crash or a full disk mid-append leaves: half a line. It never reached Optuna (records come first),
    so the search cuts it, says so, and runs that trial again; the whole records before it stay byte for byte."""
    from nas.search.driver import SearchOptions, run_search
    from nas.search.events import SearchListener

    p = cost_study / "trials.jsonl"
    whole = p.read_bytes()
    p.write_bytes(whole + b'{"number": 6, "hash": "abc", "genotype": {"stem"')
    said: list[str] = []

    class Messages(SearchListener):
        def message(self, text: str) -> None:
            said.append(text)

    s = run_search(SearchOptions(space=TINY, trials=9, out=cost_study.parent, objective="cost", wandb="disabled"),
                   [Messages()])
    assert any("removed a last record cut short" in m for m in said), said
    data = p.read_bytes()
    assert data.startswith(whole)
    assert [json.loads(line)["number"] for line in data.decode().splitlines()] == list(range(9))
    assert len(s.records) == 9


# -- corrupt derived files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content, needle", [
    ("{not json", "top level"), ("[1, 2]", "references"),
    (json.dumps({"references": [{"name": "mixnet_s", "macs": 100}]}), "references[0].params"),
    (json.dumps({"references": [{"name": "x", "macs": "many", "params": 1}]}), "references[0].macs"),
    (json.dumps({"references": "mixnet_s"}), "references"),
])
@pytest.mark.parametrize("command", ["plot", "export-best"])
def test_a_corrupt_baselines_file_is_one_line_before_anything_is_written(command, content, needle, synth, tmp_path,
                                                                         monkeypatch, capsys):
    (synth / "baselines.json").write_text(content)
    before = snapshot(tmp_path)
    extra = ["--no-measure"] if command == "export-best" else []
    refused([command, "--study", synth, *extra], monkeypatch, capsys, "baselines.json", needle)
    assert snapshot(tmp_path) == before  # export: no s/ m/ l/ nor family.json


def test_pareto_of_a_cost_only_study_uses_its_own_objectives(cost_study, monkeypatch, capsys):
    code, err, out = run_main(["pareto", "--study", cost_study, "--json"], monkeypatch, capsys)
    assert code == 0, err
    doc = json.loads(out)
    stored = json.loads((cost_study / "pareto.json").read_text())
    assert doc["objectives"] == stored["objectives"] == [{"metric": "macs", "direction": "minimize"}]
    assert len(doc["front"]) == len(stored["front"]) >= 1
    assert doc["hypervolume"] == pytest.approx(stored["hypervolume"]) and doc["hypervolume"] > 0


# -- YAML alias bombs ------------------------------------------------------------------------------------------

_BOMB = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]


def _nested(key: str) -> str:
    return f"{key}:\n" + "".join(f"  {line}\n" for line in _BOMB)


def _replace_key(text: str, key: str) -> str:
    lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key}:")]
    return _nested(key) + "\n".join(lines) + "\n"


def test_an_alias_bomb_in_a_genotype_name(work, monkeypatch, capsys):
    p = work / "arch.yaml"
    p.write_text(_replace_key(MIXNET_S.read_text(), "name"))
    assert len(p.read_text().splitlines()) < 60
    refused(["describe", p], monkeypatch, capsys, "arch.yaml", "nested aliases")
    assert sorted(work.iterdir()) == [p]


def test_an_alias_bomb_in_a_space_description(work, monkeypatch, capsys):
    p = work / "space.yaml"
    p.write_text(_replace_key(TINY.read_text(), "description"))
    refused(["space", "validate", p], monkeypatch, capsys, "space.yaml", "nested aliases")


@pytest.mark.parametrize("command", ["pareto", "plot", "search"])
def test_an_alias_bomb_in_a_study_space_copy(command, cost_study, tmp_path, monkeypatch, capsys):
    (cost_study / "space.yaml").write_text(_replace_key(TINY.read_text(), "description"))
    before = snapshot(tmp_path)
    args = _resume(cost_study) if command == "search" else [command, "--study", cost_study]
    refused(args, monkeypatch, capsys, "space.yaml", "nested aliases")
    assert snapshot(tmp_path) == before


def test_a_recursive_alias(work, monkeypatch, capsys):
    p = work / "arch.yaml"
    p.write_text("name: &n [a, *n]\n" + MIXNET_S.read_text().replace("name: mixnet_s\n", ""))
    refused(["describe", p], monkeypatch, capsys, "arch.yaml", "contains it")


# -- numbers no space can hold ----------------------------------------------------------------------------------


def _space_edit(old: str, new: str) -> str:
    text = TINY.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


_HUGE = {  # id: (tiny.yaml with one value changed, the field the error names)
    "proxy-width-inf": (_space_edit("width: 1.0", "width: .inf"), "proxy.width"),
    "proxy-lr-nan": (_space_edit("batch_size: 128}", "batch_size: 128, lr: .nan}"), "proxy.lr"),
    "budget-macs-inf": (_space_edit("budgets: {macs: 1M", "budgets: {macs: .inf"), "budgets.macs"),
    "budget-macs-1e300": (_space_edit("budgets: {macs: 1M", "budgets: {macs: 1e300"), "budgets.macs"),
    "seed-10^100": (_space_edit("seed: 0}", f"seed: {10**100}}}"), "search.seed"),
    "seed-negative": (_space_edit("seed: 0}", "seed: -1}"), "search.seed"),
    "concurrency-10^18": (_space_edit("trials: 4,", f"trials: 4, concurrency: {10**18},"), "search.concurrency"),
    "trials-10^12": (_space_edit("trials: 4,", f"trials: {10**12},"), "search.trials"),
    "repeat-10000": (_space_edit("repeat: [1, 2]", "repeat: [1, 10000]"), "stages[0].repeat"),
    "repeat-1000000": (_space_edit("repeat: [1, 2]", "repeat: [1, 1000000]"), "stages[0].repeat"),
    "channels-10^9": (_space_edit("out: [16, 24]", f"out: [16, {10**9}]"), "stages[0].out"),
    "choices-1000": (_space_edit("out: [16, 24]", f"out: {list(range(8, 8008, 8))}"), "stages[0].out"),
    "expand-inf": (_space_edit("expand: [1, 3]", "expand: [1, .inf]"), "stages[0].expand"),
    "resolution-10^9": (_space_edit("resolution: 32,", f"resolution: {10**9},"), "target.resolution"),
    "proxy-epochs-10^9": (_space_edit("epochs: 1,", f"epochs: {10**9},"), "proxy.epochs"),
    "stages-1000": (TINY.read_text().replace("stages:\n", "stages:\n" + "".join(
        f"  - {{name: x{i}, out: 16}}\n" for i in range(1000)), 1), "stages"),
}


@pytest.mark.parametrize("case", sorted(_HUGE))
@pytest.mark.parametrize("command", ["validate", "count"])
def test_a_number_no_space_can_hold_is_one_line(command, case, work, monkeypatch, capsys):
    content, field = _HUGE[case]
    p = work / "space.yaml"
    p.write_text(content)
    refused(["space", command, p], monkeypatch, capsys, "space.yaml", field)


def test_a_search_with_a_huge_seed_is_refused_before_anything_is_written(work, monkeypatch, capsys):
    refused(["search", "--space", TINY, "--out", "out", "--seed", str(10**100), "--objective", "cost"],
            monkeypatch, capsys, "--seed")
    assert list(work.iterdir()) == []


def test_counting_a_space_of_many_choices_stays_fast(work, monkeypatch, capsys):
    """Sixteen choices per option in every stage: counted (exactly) without enumerating anything."""
    many = ("out: [16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136], "
            "expand: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], "
            "se: [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75], "
            "repeat: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], share: block, "
            "kernels: [[3], [5], [7], [3, 5], [3, 5, 7]], dilation: [1, 2, 3], act: [relu, swish]")
    stages = "".join(f"  - {{name: s{i}, stride: {2 if i < 3 else 1}, {many}}}\n" for i in range(8))
    p = work / "space.yaml"
    p.write_text("name: many\ntarget: {resolution: 64, num_classes: 10}\nstem: {out: [16, 32]}\nstages:\n" + stages
                 + "head: {features: [0, 128]}\nproxy: {width: 1.0}\n")
    t0 = time.perf_counter()
    code, err, out = run_main(["space", "count", p, "--json"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out)["log10"] > 100
    assert time.perf_counter() - t0 < 30


# -- networks that cannot fit in memory -----------------------------------------------------------------------


@pytest.fixture
def giant(work: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MixNet-S with 10^6 stem channels (what a hostile genotype file asks for), under a 2 GB limit."""
    monkeypatch.setenv("NAS_MEMORY_LIMIT", "2G")
    p = work / "giant.yaml"
    p.write_text(MIXNET_S.read_text().replace("stem: {out: 16,", "stem: {out: 1000000,"))
    return p


@pytest.mark.parametrize("args", [
    ["train", "--arch", "giant.yaml", "--json", "--epochs", "1", "--save", "saved"],
    ["export-best", "--arch", "giant.yaml", "--out", "exported", "--no-measure"],
    ["describe", "giant.yaml", "--measure"],
], ids=["train", "export-best", "describe-measure"])
def test_a_network_too_big_for_memory_is_refused_before_it_is_built(args, giant, work, monkeypatch, capsys):
    refused(args, monkeypatch, capsys, "giant.yaml", "stem", "NAS_MEMORY_LIMIT")
    assert sorted(work.iterdir()) == [giant]  # no saved/, no exported/


def test_the_memory_estimate_is_near_what_torch_allocates():
    """Activation and weight bytes from the genotype alone, against the tensors a training step keeps."""
    import torch

    from nas.cost.memory import estimate
    from nas.genotype import load
    from nas.model import build
    from nas.proxy import proxy_genotype

    g = proxy_genotype(load(MIXNET_S), 64, 1.0)
    net = build(g, 10)
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel() * t.element_size() if t.requires_grad or t.grad_fn is None else 0)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.randn(8, 3, 64, 64)).sum()
    est = estimate(g, batch=8, num_classes=10, training=True)
    weights = sum(p.numel() for p in net.parameters()) * 4
    assert est.weights == pytest.approx(4 * weights, rel=0.01)
    assert 0.5 < est.activations / sum(saved) < 2.5


def test_an_architecture_too_big_to_train_is_answered_not_trained(tmp_path, monkeypatch):
    """In a search, a proposal whose proxy cannot be trained in memory is recorded failed with the reason."""
    import optuna

    from nas.search.driver import _too_big
    from nas.search.searcher import Proposer
    from nas.space import load_space

    monkeypatch.setenv("NAS_MEMORY_LIMIT", "50M")  # tiny.yaml's proxies need 25-90 MB to train
    space = load_space(TINY)
    study = optuna.create_study(directions=["maximize", "minimize"])
    written: list = []
    p = Proposer(space, study, objectives=space.objectives, target=30, records=[],
                 write=lambda r, durable=True: written.append(r), mirror=lambda t: None, refuse=_too_big(space))
    launches = [launch for _ in range(6) if (launch := p.next()) is not None]
    failed = [r for r in written if r.status == "failed"]
    assert failed and all("NAS_MEMORY_LIMIT" in r.error and r.epochs == 0 for r in failed)
    assert all(study.get_trials()[r.number].state == optuna.trial.TrialState.FAIL for r in failed)
    assert launches  # the small ones still train


# -- addresses ---------------------------------------------------------------------------------------------------


@pytest.fixture
def web_server():
    """``python -m http.server`` on a free loopback port (what the issue pointed --address at)."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the request log would go to this test's stderr
            pass

    server = HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never answers."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_an_address_that_is_no_ray_cluster(web_server, work, monkeypatch, capsys):
    refused(["search", "--space", TINY, "--out", "out", "--trials", "2", "--address", web_server], monkeypatch,
            capsys, "--address", "not a Ray cluster")
    assert list(work.iterdir()) == []


def test_an_address_that_never_answers(silent_port, work, monkeypatch, capsys):
    from nas.search import settings

    monkeypatch.setattr(settings, "ADDRESS_TIMEOUT_S", 1.0)
    refused(["search", "--space", TINY, "--out", "out", "--trials", "2", "--address", silent_port], monkeypatch,
            capsys, "--address", "does not answer")
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("address, needle", [("ray://127.0.0.1:10001", "Ray Client"), ("127.0.0.1:99999", "HOST:PORT"),
                                             ("http://127.0.0.1:8265", "HOST:PORT")])
def test_an_address_nas_does_not_use(address, needle, work, monkeypatch, capsys):
    refused(["search", "--space", TINY, "--out", "out", "--address", address], monkeypatch, capsys, "--address",
            needle)
    assert list(work.iterdir()) == []


def test_the_probe_recognises_a_ray_gcs(local_ray):
    """The same check accepts a real Ray head's GCS (a gRPC server answers the HTTP/2 preface)."""
    import ray

    from nas.search.settings import check_address

    check_address(ray.get_runtime_context().gcs_address)


# -- outputs that are files ---------------------------------------------------------------------------------------


def test_baselines_into_a_study_that_is_a_file(work, monkeypatch, capsys):
    (work / "study").write_text("not a directory\n")
    before = snapshot(work)
    refused(["baselines", "--space", TINY, "--study", "study", "--refs", "mixnet_s"], monkeypatch, capsys,
            "study", "--study", "not a directory")
    assert snapshot(work) == before


def test_baselines_of_a_corrupt_study_fail_before_training(synth, tmp_path, monkeypatch, capsys):
    p = synth / "trials.jsonl"
    p.write_text(p.read_text().replace('"status": "complete"', '"status": "exploded"', 1))
    before = snapshot(tmp_path)
    line, _ = refused(["baselines", "--space", TINY, "--study", synth, "--refs", "mixnet_s"], monkeypatch, capsys,
                      "trials.jsonl", "status")
    assert snapshot(tmp_path) == before  # no baselines.json written, so "nothing was changed" is true


def test_lut_build_into_a_directory(work, monkeypatch, capsys):
    (work / "table").mkdir()
    before = snapshot(work)
    refused(["lut", "build", "--space", TINY, "--out", "table", "--no-cache"], monkeypatch, capsys, "table",
            "is a directory")
    assert snapshot(work) == before  # and no temp file


@pytest.mark.parametrize("args", [["--arch", str(MIXNET_S)], ["--study", "STUDY"]], ids=["arch", "study"])
def test_export_into_a_file(args, synth, work, monkeypatch, capsys):
    (work / "out").write_text("a file\n")
    args = [str(synth) if a == "STUDY" else a for a in args]
    before = snapshot(work), snapshot(synth)
    refused(["export-best", *args, "--out", "out", "--no-measure"], monkeypatch, capsys, "out", "not a directory")
    assert (snapshot(work), snapshot(synth)) == before
