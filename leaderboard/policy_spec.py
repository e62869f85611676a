"""How a submission names the policy of a run: the accepted forms, parsed in one place.

A run's ``policy`` string (with its optional ``revision``) is one of:

- a **local path**, relative to the folder of the submission file, with POSIX separators
  (``"../checkpoints/ppo/seed0"``); a run without ``revision`` is a local path;
- a **Hugging Face hub id** ``owner/name`` with ``revision``, the 40-hex commit the run was
  evaluated at, so the checkpoint behind a row cannot change after it was verified; a run
  with ``revision`` is a hub id;
- ``best-of-N:`` followed by either of them: best-of-N sampling from that policy, the
  shipped preference model choosing among N samples;
- ``temperature-T:`` followed by either of them: that policy sampled at temperature T
  instead of the protocol's (a decoding baseline such as the SFT policy at T=0.3; its KL to
  the SFT policy at the protocol temperature is estimated from its own samples).

A path of the shape ``owner/name`` is ambiguous. A submission written by ``rlhf-gym
evaluate`` says ``./owner/name`` for such a folder; `validate` takes a revision-less
``owner/name`` that is no folder next to the submission for a hub id with its revision
missing.

This module reads strings and checks folders only; `validate` imports it without loading
torch.

Example:
    >>> parse_policy("best-of-16:../../envs/summarize/assets/sft_policy")
    (16, '../../envs/summarize/assets/sft_policy')
    >>> decoding_prefix("temperature-0.3:../../envs/summarize/assets/sft_policy"), policy_temperature("temperature-0.3:x")
    (('temperature-0.3:', '../../envs/summarize/assets/sft_policy'), 0.3)
    >>> is_hub_id("EleutherAI/pythia-160m"), is_hub_id("../checkpoints/ppo/seed0")
    (True, False)
    >>> relative_policy("/repo/leaderboard/checkpoints/ppo/seed0", "/repo/leaderboard/submissions")
    '../checkpoints/ppo/seed0'
    >>> relative_policy("/repo/leaderboard/submissions/me/seed0", "/repo/leaderboard/submissions")
    './me/seed0'
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path, PurePosixPath

BEST_OF_PREFIX = "best-of-"
TEMPERATURE_PREFIX = "temperature-"
REVISION = re.compile(r"[0-9a-f]{40}")
"""A hub revision as a submission records it: a full 40-hex commit hash (branches and tags move)."""
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


class PolicyError(ValueError):
    """A policy that cannot be evaluated: a string in no accepted form, a missing folder, or (from
    `rlhf_gym.leaderboard.evaluate.load_policy`) a checkpoint refused or failing to load. The
    message is one line that names the policy."""


def parse_policy(spec: str) -> tuple[int, str]:
    """``"best-of-N:LOCATION"`` -> (N, LOCATION); a plain path or hub id -> (1, it).

    Raises:
        PolicyError: a ``best-of-`` prefix without a count N >= 1, a colon and a location.

    Example:
        >>> parse_policy("best-of-16:envs/summarize/assets/sft_policy"), parse_policy("runs/ppo/final_policy")
        ((16, 'envs/summarize/assets/sft_policy'), (1, 'runs/ppo/final_policy'))
    """
    if spec.startswith(BEST_OF_PREFIX):
        count, colon, location = spec.removeprefix(BEST_OF_PREFIX).partition(":")
        if not (count.isascii() and count.isdigit()) or int(count) < 1 or not colon or not location:
            raise PolicyError(f"policy {spec!r}: expected best-of-N:PATH with a whole number N >= 1 (e.g. best-of-4:runs/x/final_policy)")
        return int(count), location
    if not spec:
        raise PolicyError("policy '': expected a path, a hub id, best-of-N:PATH or temperature-T:PATH")
    if spec.startswith(TEMPERATURE_PREFIX):
        return 1, decoding_prefix(spec)[1]
    return 1, spec


def decoding_prefix(spec: str) -> tuple[str, str]:
    """``spec`` split into its decoding prefix (``"best-of-N:"``, ``"temperature-T:"`` or ``""``)
    and the location after it, so a location can be rewritten and the prefix kept.

    Raises:
        PolicyError: a malformed prefix (see `parse_policy` and `policy_temperature`).
    """
    if spec.startswith(BEST_OF_PREFIX):
        count, location = parse_policy(spec)
        return f"{BEST_OF_PREFIX}{count}:", location
    if spec.startswith(TEMPERATURE_PREFIX):
        value, colon, location = spec.removeprefix(TEMPERATURE_PREFIX).partition(":")
        temperature = float(value) if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value) else math.nan
        if not (temperature > 0 and math.isfinite(temperature)) or not colon or not location:
            raise PolicyError(f"policy {spec!r}: expected temperature-T:PATH with a decimal T > 0 "
                              "(e.g. temperature-0.3:runs/x/final_policy)")
        return f"{TEMPERATURE_PREFIX}{value}:", location
    return "", spec


def policy_temperature(spec: str) -> float | None:
    """The T of a ``temperature-T:`` spec, or None (the protocol's temperature applies).

    Raises:
        PolicyError: a malformed ``temperature-`` prefix.
    """
    prefix = decoding_prefix(spec)[0]
    return float(prefix.removeprefix(TEMPERATURE_PREFIX)[:-1]) if prefix.startswith(TEMPERATURE_PREFIX) else None


def policy_string(best_of: int, location: str) -> str:
    """The inverse of `parse_policy`: ``(4, "x") -> "best-of-4:x"``, ``(1, "x") -> "x"``."""
    return location if best_of == 1 else f"{BEST_OF_PREFIX}{best_of}:{location}"


def is_hub_id(location: str) -> bool:
    """Whether ``location`` has the shape of a hub id ``owner/name`` (it may also be a relative folder)."""
    return _HUB_ID.fullmatch(location) is not None


def resolve_local(location: str, base_dir: str | os.PathLike[str]) -> Path:
    """A submission's local policy path as a path on this machine: relative to ``base_dir``
    (the submission file's folder), ``~`` not expanded."""
    return Path(base_dir) / PurePosixPath(location)


def relative_policy(location: str | os.PathLike[str], base_dir: str | os.PathLike[str]) -> str:
    """How a submission in ``base_dir`` names the local folder ``location`` (as typed, relative
    to the current directory, or absolute): relative to ``base_dir``, POSIX separators, with
    ``./`` in front when the result would read as a hub id."""
    relative = Path(os.path.relpath(Path(location).resolve(), Path(base_dir).resolve())).as_posix()
    return f"./{relative}" if is_hub_id(relative) else relative


def local_path_problem(location: str) -> str | None:
    """Why ``location`` cannot be a submission's local path (absolute, backslashes), or None."""
    if "\\" in location:
        return f"{location!r} has backslashes; write a local path with / (POSIX separators), relative to the submission's folder"
    if PurePosixPath(location).is_absolute() or re.match(r"[A-Za-z]:", location) or location.startswith("~"):
        return f"{location!r} is absolute; a local path is relative to the submission file's folder (e.g. ../checkpoints/NAME/seed0)"
    return None
