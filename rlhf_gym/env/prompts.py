"""Where prompts come from: seeded generators and Hugging Face datasets.

A prompt source is an indexable collection of `Prompt`s; the env decides which index
each episode gets (see `rlhf_gym.env.seeding`). Two kinds ship:

- `GeneratedPromptSource`: prompts made on demand by a deterministic function of an id
  (the procedurally generated worlds in ``rlhf_gym.envs``; unbounded supply);
- `DatasetPromptSource`: rows of a Hugging Face dataset, by hub id or local path, with
  configurable column names and a text template.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rlhf_gym.lm.loading import MissingArtifactError, missing_artifact_message


@dataclass(frozen=True)
class Prompt:
    """One task instance.

    Attributes:
        text: what the policy is conditioned on, already in the task's format
            (e.g. ending in ``"\\nTL;DR:"``).
        index: the prompt's index in its source.
        reference: the reference response, if the task has one.
        record: task-specific latent data the gold judge needs (``None`` if no judge).
    """

    text: str
    index: int
    reference: str | None = None
    record: Any = None


@runtime_checkable
class PromptSource(Protocol):
    """An indexable collection of prompts."""

    def __len__(self) -> int: ...

    def get_many(self, indices: Sequence[int]) -> list[Prompt]:
        """The prompts at ``indices`` (each in ``[0, len(self))``)."""
        ...


class GeneratedPromptSource:
    """Prompts made on demand by a deterministic function of an integer id.

    Index ``i`` maps to id ``id_range[0] + i``, so a split is an id range and splits
    are disjoint by construction. Recently used prompts are cached.

    Args:
        make_prompt: ``id -> (text, reference, record)``; must be deterministic.
        id_range: half-open range ``(start, stop)`` of ids in this source.
        cache_size: number of prompts kept in the LRU cache.

    Example:
        >>> source = GeneratedPromptSource(lambda i: (f"count to {i}:", None, None), (10, 20))
        >>> len(source), source.get_many([0, 3])[1].text
        (10, 'count to 13:')
    """

    def __init__(
        self,
        make_prompt: Callable[[int], tuple[str, str | None, Any]],
        id_range: tuple[int, int],
        cache_size: int = 4096,
    ) -> None:
        start, stop = id_range
        if stop <= start:
            raise ValueError(f"id_range must be a non-empty half-open range, got {id_range}")
        self.make_prompt = make_prompt
        self.id_range = (start, stop)
        self._cache: OrderedDict[int, Prompt] = OrderedDict()
        self._cache_size = cache_size

    def __len__(self) -> int:
        return self.id_range[1] - self.id_range[0]

    def get_many(self, indices: Sequence[int]) -> list[Prompt]:
        return [self._get(int(i)) for i in indices]

    def _get(self, index: int) -> Prompt:
        if not 0 <= index < len(self):
            raise IndexError(f"prompt index {index} out of range [0, {len(self)})")
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        text, reference, record = self.make_prompt(self.id_range[0] + index)
        prompt = Prompt(text=text, index=index, reference=reference, record=record)
        self._cache[index] = prompt
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return prompt


class DatasetPromptSource:
    """Prompts from a Hugging Face ``datasets.Dataset``.

    Args:
        dataset: the rows.
        prompt_column: column holding the prompt text.
        reference_column: column holding the reference response, if any.
        template: format string applied to the prompt column, e.g. ``"{}\\nTL;DR:"``.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        prompt_column: str = "prompt",
        reference_column: str | None = None,
        template: str = "{}",
    ) -> None:
        columns = list(dataset.column_names)
        for name in [prompt_column] + ([reference_column] if reference_column else []):
            if name not in columns:
                raise ValueError(f"dataset has no column {name!r}; its columns are {columns}")
        if len(dataset) == 0:
            raise ValueError("the dataset has no rows")
        if "{}" not in template:
            raise ValueError(f"template must contain '{{}}' for the prompt text, got {template!r}")
        self.dataset = dataset
        self.prompt_column = prompt_column
        self.reference_column = reference_column
        self.template = template

    @classmethod
    def from_name(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        split: str = "train",
        prompt_column: str = "prompt",
        reference_column: str | None = None,
        template: str = "{}",
        revision: str | None = None,
        local_files_only: bool = False,
    ) -> DatasetPromptSource:
        """Load a dataset by hub id, a local data folder/file, or a ``save_to_disk`` folder.

        Args:
            local_files_only: never contact the hub (offline, a hub id not in the cache
                then fails at once instead of after the client's retries).

        Raises:
            MissingArtifactError: the dataset or split cannot be found (e.g. offline).
        """
        import datasets  # deferred: `datasets` is slow to import

        name = str(name_or_path)
        path = Path(name)
        try:
            saved_with_save_to_disk = (path / "state.json").is_file() or (
                path / "dataset_dict.json"
            ).is_file()
            if path.is_dir() and saved_with_save_to_disk:
                loaded = datasets.load_from_disk(name)
                dataset = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
            elif path.is_file():
                builder = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
                if path.suffix not in builder:
                    raise ValueError(f"unsupported data file type {path.suffix!r}; use {sorted(builder)}")
                dataset = datasets.load_dataset(builder[path.suffix], data_files=name, split=split)
            else:
                dataset = _load_hub_dataset(name, split, revision, local_files_only)
        # datasets' DatasetNotFoundError and DataFilesNotFoundError are OSErrors; an unknown
        # split is a ValueError or KeyError.
        except (OSError, ValueError, KeyError, ConnectionError) as error:
            raise MissingArtifactError(missing_artifact_message("dataset", name, error)) from error
        return cls(
            dataset,
            prompt_column=prompt_column,
            reference_column=reference_column,
            template=template,
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def get_many(self, indices: Sequence[int]) -> list[Prompt]:
        indices = [int(i) for i in indices]
        for i in indices:
            if not 0 <= i < len(self):
                raise IndexError(f"prompt index {i} out of range [0, {len(self)})")
        rows = self.dataset[indices] if indices else {self.prompt_column: []}
        references = rows[self.reference_column] if self.reference_column else [None] * len(indices)
        return [
            Prompt(text=self.template.format(text), index=i, reference=reference)
            for i, text, reference in zip(indices, rows[self.prompt_column], references, strict=True)
        ]


def _load_hub_dataset(name: str, split: str, revision: str | None, local_files_only: bool) -> Any:
    """``datasets.load_dataset`` by hub id; offline on request.

    ``DownloadConfig(local_files_only=True)`` does not stop datasets 5 from querying the
    hub (and retrying for ~25 s) first; its module-level offline flag does.
    """
    import datasets
    import datasets.config

    previous = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = previous or local_files_only
    try:
        return datasets.load_dataset(name, split=split, revision=revision)
    finally:
        datasets.config.HF_HUB_OFFLINE = previous
