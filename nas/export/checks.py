"""What an export reads, checked before it writes anything.

A study directory may come from anywhere, so every input of ``nas export-best`` (the output directory, the
study's ``baselines.json``, each member's weights file and the memory its network needs) is checked first:
a bad one is one InputError line and no half-written family (``s/``, ``m/`` but no ``family.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nas.cost import memory
from nas.export.files import EXAMPLE_BATCH, trial_weights
from nas.export.members import Member
from nas.genotype import Genotype
from nas.io import check_output_dir
from nas.results.store import load_baselines


def check_member_network(g: Genotype, num_classes: int, source: str | None = None) -> None:
    """The member's network can be built, traced and exported in this machine's memory."""
    memory.check(g, batch=EXAMPLE_BATCH, num_classes=num_classes, what="exporting it", source=source)


def check_family_inputs(study_dir: Path, out: Path, members: Sequence[Member], num_classes: int) -> None:
    """Everything :func:`nas.export.export_family` will read or write, before it writes anything."""
    check_output_dir(out, "--out")
    load_baselines(study_dir)
    for m in members:
        if m.source == "trained":
            trial_weights(study_dir, m.record)
        check_member_network(m.genotype, num_classes, source=f"{study_dir}: trial {m.trial} (tier {m.tier})")
