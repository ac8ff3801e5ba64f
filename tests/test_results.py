"""The typed trial record and the trials.jsonl format (nas.results.record, nas.results.store)."""

from __future__ import annotations

import json

import pytest
from _synth_study import make_study

from nas.results.record import TrialRecord
from nas.results.store import RecordWriter, read_records, study_records

KEYS = ["number", "hash", "genotype", "status", "accuracy", "best_accuracy", "macs", "params", "latency_ms",
        "latency_ms_measured", "epochs", "train_s", "images_per_s", "history", "violations", "tier", "duplicate_of",
        "error", "node", "device", "seed", "time"]


def _write(path, records):
    writer = RecordWriter(path)
    for r in records:
        writer.append(r, durable=False)
    writer.close()


def test_records_round_trip(tmp_path):
    """trials.jsonl read into typed records and written again holds the same objects, keys in the same order,
    and a file nas wrote is written again byte for byte."""
    study = make_study(tmp_path, n=6)
    text = (study / "trials.jsonl").read_text()
    records = study_records(study)
    assert all(isinstance(r, TrialRecord) for r in records) and list(records[0].to_dict()) == KEYS
    _write(tmp_path / "a.jsonl", records)
    assert [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()] == \
        [json.loads(line) for line in text.splitlines()]
    again = read_records(tmp_path / "a.jsonl")
    assert again == records
    _write(tmp_path / "b.jsonl", again)
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


def test_unknown_keys_are_kept_and_a_record_reads_as_a_mapping():
    data = {"number": 3, "hash": "abc", "genotype": {"stages": []}, "status": "complete", "macs": 10,
            "weights": "w/3.pt"}
    r = TrialRecord.from_dict(data)
    assert r.extra == {"weights": "w/3.pt"} and r["weights"] == "w/3.pt" and r.get("nothing") is None
    assert r["macs"] == r.macs == 10 and dict(r) == r.to_dict() and list(r.to_dict())[-1] == "weights"
    for bad, problem in (({**data, "status": "exploded"}, "status"), ({**data, "number": True}, "number"),
                         ([1, 2], "JSON object")):
        with pytest.raises(ValueError, match=problem):
            TrialRecord.from_dict(bad)


def test_a_trial_result_finishes_the_costed_record():
    costed = TrialRecord(number=1, hash="h", genotype={}, status="complete", macs=5, params=2, seed=0)
    hist = [{"epoch": 1, "val_accuracy": 0.4, "train_loss": 2.0}, {"epoch": 2, "val_accuracy": 0.6, "train_loss": 1.0}]
    done = costed.with_result({"val_accuracy": 0.6, "epoch": 2, "final": True, "history": hist, "train_s": 3,
                               "images_per_s": 10, "node": "n"}, planned_epochs=2)
    assert (done.status, done.accuracy, done.best_accuracy, done.epochs, done.train_s) == ("complete", 0.6, 0.6, 2, 3.0)
    assert done.trained and costed.status == "complete" and costed.epochs == 0  # the costed record is unchanged
    pruned = costed.with_result({"val_accuracy": 0.4, "epoch": 1, "final": False}, planned_epochs=2)
    assert pruned.status == "pruned" and pruned.accuracy == 0.4
    died = costed.with_result({"val_accuracy": 0.4, "epoch": 1, "final": True}, 2, error="worker died")
    assert (died.status, died.error) == ("failed", "worker died")
    dup = TrialRecord(number=2, hash="h", genotype={}, status="complete").answered_from(done)
    assert (dup.duplicate_of, dup.accuracy, dup.train_s, dup.trained) == (1, 0.6, None, False)
    assert TrialRecord(number=3, hash="h", genotype={}, status="complete").answered_from(dup).duplicate_of == 1
