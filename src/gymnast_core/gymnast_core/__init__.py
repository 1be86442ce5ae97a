"""World-Gymnast core: the data layer and the small contracts every other package builds on."""

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC, ActionSpec, NormStats
from gymnast_core.dataset import DatasetError, EpisodeDataset
from gymnast_core.episode import Episode, EpisodeError
from gymnast_core.task import Task

__all__ = [
    "BRIDGE_ACTION_SPEC",
    "ActionSpec",
    "DatasetError",
    "Episode",
    "EpisodeDataset",
    "EpisodeError",
    "NormStats",
    "Task",
]
