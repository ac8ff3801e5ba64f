"""Search spaces: YAML -> :class:`SearchSpace` (validated), sampling, reading back, exact counting (pure).

A search space is factorised per stage (MnasNet/MixNet style): every stage has
a fixed stride and chooses its width (``out``), its depth (``repeat``) and its
block options; with ``share: stage`` all blocks of the stage take one choice,
with ``share: block`` each block chooses its own. ``search_spaces/README.md``
documents every field.

Costs are for the target, training is on the proxy: every architecture is a
:class:`~nas.genotype.Genotype` at ``target.resolution`` with
``target.in_chans`` input channels, and budgets, cost objectives and family
tiers are checked on it (:mod:`nas.search.budgets`, with ``target.num_classes``
classes). ``proxy:`` (a :class:`nas.config.TrainConfig`) only decides what is
trained (:mod:`nas.proxy`).

Modules: :mod:`~nas.space.schema` (the models), :mod:`~nas.space.sources`
(decision sources), :mod:`~nas.space.walk` (the walk and reading a genotype
back), :mod:`~nas.space.count`, :mod:`~nas.space.load` (files and checks
across fields), :mod:`~nas.space.errors` (one-line messages). Which block
options are decisions where is :mod:`nas.rules`; this package imports no
torch and no cost model.
"""

from nas.config import COST_METRICS, METRICS, SAMPLERS
from nas.rules import canonical
from nas.space.errors import fmt_count, format_validation_error
from nas.space.load import SHIPPED_SPACES, find_space_file, load_space, shipped_spaces, space_from_dict
from nas.space.schema import (
    BlockChoices,
    Budgets,
    HeadChoices,
    Objective,
    SearchSettings,
    SearchSpace,
    StageSpace,
    StemChoices,
    Target,
    Tier,
    Tracking,
)

__all__ = [
    "COST_METRICS", "METRICS", "SAMPLERS", "SHIPPED_SPACES", "BlockChoices", "Budgets", "HeadChoices", "Objective",
    "SearchSettings", "SearchSpace", "StageSpace", "StemChoices", "Target", "Tier", "Tracking", "canonical",
    "find_space_file", "fmt_count", "format_validation_error", "load_space", "shipped_spaces", "space_from_dict",
]
