"""Scale-out: the launch configs, and a real multi-node Ray cluster on this machine.

Fast tests check the launch files (the cluster launcher YAML against Ray's own schema, the RayJob manifest,
the SLURM script and the local cluster script's syntax). The slow ones start
launch/local_cluster.sh (a head with no CPUs and two one-CPU worker nodes on 127.0.0.1, each its own raylet),
run ``nas search --address`` on it, check that trials ran on both workers, then SIGKILL one worker node while
a trial runs on it and check that the search still records every trial (the lost trial retried on the other
node). The cluster is always torn down, by PID, in the fixture's finaliser.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
LAUNCH = REPO / "launch"
SCRIPT = LAUNCH / "local_cluster.sh"


# -- the launch files --------------------------------------------------------------------------------------------


def test_ray_cluster_yaml_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((LAUNCH / "ray-cluster.yaml").read_text())
    config = prepare_config(raw)
    validate_config(config)
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}  # the head only runs the driver
    assert any(t["node_config"]["InstanceType"].startswith("g") for t in types.values())  # a GPU worker type
    setup = " ".join(raw["setup_commands"])
    assert "pip install" in setup and "-e ." in setup
    assert "constraints" not in setup  # GPU nodes must get pip's CUDA torch
    assert "nas search" in (LAUNCH / "ray-cluster.yaml").read_text()
    with pytest.raises(Exception, match="bogus"):
        validate_config(prepare_config({**raw, "bogus": 1}))


def test_rayjob_manifest():
    job = yaml.safe_load((LAUNCH / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert "nas search" in spec["entrypoint"] and "--address auto" in spec["entrypoint"]
    out = spec["entrypoint"].split("--out ")[1].split()[0]
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    mounts = head["template"]["spec"]["containers"][0]["volumeMounts"]
    assert any(out.startswith(m["mountPath"]) for m in mounts)  # the study directory is on the volume
    volumes = {v["name"]: v for v in head["template"]["spec"]["volumes"]}
    assert all("persistentVolumeClaim" in volumes[m["name"]] for m in mounts)
    (gpu,) = cluster["workerGroupSpecs"]
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1
    assert gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]


@pytest.mark.parametrize("name", ["slurm.sbatch", "local_cluster.sh"])
def test_shell_scripts_parse(name):
    r = subprocess.run(["bash", "-n", str(LAUNCH / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_slurm_script_starts_head_and_workers_then_searches():
    text = (LAUNCH / "slurm.sbatch").read_text()
    assert "#SBATCH --nodes=" in text
    head = text.index("ray start --head")
    worker = text.index('ray start --address="$ADDRESS"')
    search = text.index('nas search --space "$SPACE" --address "$ADDRESS" --out "$OUT" "${FLAGS[@]}"')
    assert head < worker < search
    assert "cluster_space" not in text and "--cpus-per-trial" in text and "--gpus-per-trial" in text
    assert text.count("srun ") >= 3


def test_local_cluster_script_usage():
    r = subprocess.run([str(SCRIPT), "bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


# -- a real three-node cluster on 127.0.0.1 -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    def __init__(self) -> None:
        # Short: Ray's unix sockets live under it (~107 characters at most).
        self.dir = Path(tempfile.mkdtemp(prefix="nasc", dir="/tmp"))
        self.port = _free_port()
        self.env = {**os.environ, "NAS_CLUSTER_DIR": str(self.dir), "NAS_CLUSTER_PORT": str(self.port),
                    "NAS_HEAD_CPUS": "0", "NAS_WORKERS": "2", "NAS_WORKER_CPUS": "1",
                    "NAS_OBJECT_STORE": "100000000", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        for k in ("RAY_ADDRESS", "RAY_AUTH_MODE"):
            self.env.pop(k, None)
        self.address = f"127.0.0.1:{self.port}"

    def cmd(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def node_ids(self) -> dict[str, str]:
        """Alive nodes: name (head, w1, w2) -> Ray node id, from each node's custom resource."""
        code = ("import json, ray\n"
                f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
                "print(json.dumps({n['NodeID']: sorted(n['Resources']) for n in ray.nodes() if n['Alive']}))\n")
        r = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        nodes = json.loads(r.stdout.strip().splitlines()[-1])
        return {res[len("nas_node_"):]: nid for nid, rs in nodes.items() for res in rs if res.startswith("nas_node_")}

    def leftover_pids(self) -> list[int]:
        r = subprocess.run(["pgrep", "-f", str(self.dir)], capture_output=True, text=True)
        return [int(p) for p in r.stdout.split()]


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster()
    try:
        r = c.cmd("start")
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip() == c.address
        yield c
    finally:
        c.cmd("stop", timeout=120)
        for pid in c.leftover_pids():  # belt and braces: nothing of this cluster may outlive the tests
            os.kill(pid, 9)
        shutil.rmtree(c.dir, ignore_errors=True)


def _space(tmp_path: Path, epochs: int) -> Path:
    data = yaml.safe_load((REPO / "search_spaces" / "tiny.yaml").read_text())
    data["proxy"].update(epochs=epochs, subsample=600)
    data["search"].update(scheduler="none", concurrency=2)
    p = tmp_path / "tiny_cluster.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _search(cluster: LocalCluster, space: Path, out: Path, trials: int) -> list[str]:
    return [str(Path(sys.executable).with_name("nas")), "search", "--space", str(space), "--out", str(out),
            "--trials", str(trials), "--address", cluster.address, "--quiet", "--wandb", "disabled"]


def _records(study_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (study_dir / "trials.jsonl").read_text().splitlines() if line.strip()]


def _node_of(record: dict, ids: dict[str, str]) -> str:
    short = (record["node"] or "").rsplit("/", 1)[-1]
    names = [name for name, nid in ids.items() if short and nid.startswith(short)]
    assert len(names) == 1, (record["node"], ids)
    return names[0]


@pytest.mark.slow
def test_search_spreads_over_worker_nodes(cluster, tmp_path):
    ids = cluster.node_ids()
    assert sorted(ids) == ["head", "w1", "w2"]
    r = subprocess.run(_search(cluster, _space(tmp_path, epochs=1), tmp_path, 4), env=cluster.env,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = _records(tmp_path / "tiny")
    assert sorted(r["number"] for r in recs) == [0, 1, 2, 3]
    trained = [r for r in recs if r["status"] == "complete" and r["duplicate_of"] is None]
    nodes = {_node_of(r, ids) for r in trained}
    assert nodes == {"w1", "w2"}, [(r["number"], r["node"]) for r in trained]  # both workers, never the head


def _running_trial_on(cluster: LocalCluster, node: str) -> bool:
    """Whether a trial is executing on ``node``: a ``ray::ImplicitFunc.train`` process under its raylet."""
    raylet = cluster.cmd("raylet-pid", node).stdout.strip()
    if not raylet:
        return False
    r = subprocess.run(["ps", "-o", "args=", "--ppid", raylet], capture_output=True, text=True)
    return any(line.startswith("ray::ImplicitFunc.train") for line in r.stdout.splitlines())


@pytest.mark.slow
def test_search_survives_a_worker_node_killed_mid_search(cluster, tmp_path):
    ids = cluster.node_ids()
    total = 6
    proc = subprocess.Popen(_search(cluster, _space(tmp_path, epochs=3), tmp_path, total), env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not _running_trial_on(cluster, "w1"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial ever ran on w1"
            time.sleep(0.2)
        killed = cluster.cmd("kill-node", "w1")
        assert killed.returncode == 0, killed.stderr
        t_kill = time.time()
        _, err = proc.communicate(timeout=500)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "w1" not in cluster.node_ids()

    recs = _records(tmp_path / "tiny")
    numbers = [r["number"] for r in recs]
    assert len(numbers) == total == len(set(numbers))  # every requested trial recorded, once
    assert all(r["status"] != "failed" for r in recs), [(r["number"], r["error"]) for r in recs]
    late = [r for r in recs if r["time"] > t_kill + 1 and r["status"] == "complete" and r["duplicate_of"] is None]
    assert late and all(_node_of(r, ids) == "w2" for r in late)
    # the trial that was running on w1 failed there and was retried (Tune kept its error)
    assert list((tmp_path / "tiny" / "ray").rglob("error.txt"))
