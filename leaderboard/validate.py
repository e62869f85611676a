"""Check leaderboard submissions (``rlhf-gym leaderboard validate FILE...``).

A submission is one UTF-8 JSON object in the format of ``schema.json`` (this folder; JSON
Schema draft 2020-12, shipped as package data). `validate_submission` returns one
human-readable line per problem, naming the field, the bad value and what was expected;
an empty list means the submission is valid. It never raises, whatever the input: every
stage below turns what it rejects into problems, and a later stage runs only when the
earlier ones found none (except semantics, which run alongside the schema):

1. size: at most `MAX_BYTES` (a file's size is checked before it is read);
2. encoding: UTF-8 (no byte order mark);
3. JSON, strictly: no ``NaN`` / ``Infinity`` / ``-Infinity``, no number that overflows to
   infinity, no duplicate key in an object, at most `MAX_DEPTH` levels of nesting;
4. the top level is a JSON object;
5. the schema: every error, with its JSON path (``runs[2].metrics.sampled.gold: 1.5 is
   greater than the maximum of 1``);
6. semantics beyond the schema: ``env_id`` is an env of the suite with a leaderboard
   protocol, ``protocol_version`` and ``protocol_hash`` are that protocol's current ones,
   the seeds are distinct, there are at least 3 runs, integers are written as integers,
   the date is a real calendar date, and every number is finite; the agent's name is not
   a checkpoint folder's (``final_policy``, ``policy``, ...); every ``policy`` is in one of
   the forms of `rlhf_gym.leaderboard.policy_spec` (a relative local path, a hub id with its
   40-hex ``revision``, ``best-of-N:`` either); ``training_env_steps > 0`` comes with every
   run's ``training_command`` and 0 with none; each run reports exactly the protocol's
   metrics under each decoding (`rlhf_gym.leaderboard.protocol.metric_set`: the gold
   metrics are required with a gold judge and refused without one, likewise the reference
   metrics with references; the schema lists them as optional, since it cannot know the
   protocol); each run records the protocol's ``per_post`` pair (``gold`` and
   ``sft_gold``, or ``proxy`` and ``sft_proxy`` without a gold judge), one score per test
   post, whose means are the run's ``gold`` and ``gold_change`` (or ``proxy_reward``).

Validation reads the file only: it never loads or re-runs a checkpoint (that is
``rlhf-gym leaderboard verify``). The one look at the disk is for a revision-less policy of
the shape ``owner/name``: a folder of that name next to the submission makes it a local
path; otherwise it is a hub id whose revision is missing.

Example:
    >>> validate_submission(b"[1, 2]")
    ['(top level): a submission must be a JSON object {...}, got an array']
    >>> validate_submission('{"a": 1, "a": 2}')
    ['invalid JSON: duplicate key "a" in an object']
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

MAX_BYTES = 4 << 20
"""The largest submission accepted, in bytes (4 MiB; with 256 posts' ``per_post`` scores a
3-run submission written by ``rlhf-gym evaluate`` is about 40 KiB, a 100-run one about 1.2 MiB)."""
MAX_DEPTH = 32
"""The deepest nesting of arrays and objects accepted (a valid submission has 6 levels)."""
MAX_PROBLEMS = 100
"""At most this many problems are listed, then a line says how many more there were."""
MIN_RUNS = 3
"""A submission reports at least this many seeds."""
SCHEMA_VERSION = 2
"""The submission format this module validates (``schema_version``; leaderboard/schema.json)."""
PER_POST_TOLERANCE = 1e-5
"""How far the mean of a ``per_post`` array may be from its metric (the scores are rounded to 6 decimals)."""
GENERIC_AGENT_NAME = re.compile(r"(final[_-]?policy|policy|checkpoint|model|seed)([_-]?\d+)?", re.IGNORECASE)
"""Names of checkpoint folders, not of agents (``final_policy``, ``checkpoint-500``, ``seed0``): rejected as ``agent.name``."""

_ROOT = "(top level)"
_SHOW_CHARS = 80  # a bad value is shown with at most this many characters
_MESSAGE_CHARS = 300  # a schema message (which quotes the value) is cut at this many

ProtocolLookup = Callable[[str], Any]
"""``env_id -> Protocol`` (attributes ``version``, ``hash``, ``posts`` and ``metrics``); raises
KeyError for an env without one. The checks that need ``posts`` or ``metrics`` are skipped
for a protocol without them."""


def get_protocol(env_id: str) -> Any:
    """The current leaderboard protocol of ``env_id`` (`rlhf_gym.leaderboard.protocol.get_protocol`).

    Imported when called: validating a file's syntax and schema loads nothing else.
    """
    from rlhf_gym.leaderboard.protocol import get_protocol as lookup

    return lookup(env_id)


# Public API -------------------------------------------------------------------------------
def validate_submission(
    data: bytes | str | Path, *, protocol_lookup: ProtocolLookup | None = None, base_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """The problems of one submission; an empty list means it is valid.

    Args:
        data: the submission's bytes, its text (a ``str`` is JSON text, not a path), or the
            `Path` of its file.
        protocol_lookup: ``env_id -> Protocol``; by default this module's `get_protocol`
            (looked up when called, so tests can monkeypatch it).
        base_dir: the folder the submission's local policy paths are relative to (default:
            the file's folder for a `Path`, none for bytes or text).

    Never raises: an unreadable file, bad bytes or an unexpected failure of a check are
    problems too.
    """
    try:
        raw, problems = _read(data)
        if problems:
            return problems
        text, problems = _decode(raw)
        if problems:
            return problems
        value, problems = parse_json(text)
        if problems:
            return problems
        if base_dir is None and isinstance(data, Path):
            base_dir = data.parent
        return check_submission(value, protocol_lookup=protocol_lookup, base_dir=base_dir)
    except Exception as error:  # the contract: problems, never a traceback
        return [f"internal error of the validator ({type(error).__name__}: {_cut(str(error), _MESSAGE_CHARS)}); please report it"]


def validate_files(
    paths: Sequence[str | Path], *, protocol_lookup: ProtocolLookup | None = None, out: TextIO | None = None
) -> int:
    """Validate submission files; prints ``OK path`` or ``FAIL path`` and one indented line per problem.

    Returns:
        The exit code: 0 when every file is valid, 1 when one is not (or no file was given).
    """
    out = sys.stdout if out is None else out
    if not paths:
        print("FAIL no submission file given", file=out)
        return 1
    failed = False
    for path in paths:
        problems = validate_submission(Path(path), protocol_lookup=protocol_lookup)
        failed = failed or bool(problems)
        print(f"{'FAIL' if problems else 'OK'} {path}", file=out)
        for problem in problems:
            print(f"  {problem}", file=out)
    return 1 if failed else 0


def parse_json(text: str) -> tuple[Any, list[str]]:
    """Strictly parse JSON text: ``(value, [])``, or ``(None, problems)``.

    Rejects ``NaN`` / ``Infinity`` / ``-Infinity`` (not JSON, though Python's `json` accepts
    them), numbers too large for a float, duplicate keys, nesting deeper than `MAX_DEPTH`,
    and integers too long to convert (Python's digit limit).
    """
    if text.startswith("\ufeff"):
        return None, ["invalid JSON: the text starts with a byte order mark (U+FEFF); save it as UTF-8 without BOM"]
    if not text.strip():
        return None, ["invalid JSON: the file is empty (expected a JSON object)"]
    found: list[str] = []

    def constant(name: str) -> None:
        found.append(f"invalid JSON: {name} is not a JSON number (JSON has no NaN or Infinity; every metric must be finite)")
        return None

    def number(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            shown = _cut(literal, _SHOW_CHARS)
            found.append(f"invalid JSON: the number {shown} is too large for a 64-bit float (it overflows to infinity)")
        return value

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, item in items:
            if key in result:
                found.append(f"invalid JSON: duplicate key {_show(key)} in an object")
            result[key] = item
        return result

    try:
        value = json.loads(text, parse_constant=constant, parse_float=number, object_pairs_hook=pairs)
    except RecursionError:
        return None, [f"invalid JSON: nested too deeply (arrays/objects more than {MAX_DEPTH} levels deep)"]
    except json.JSONDecodeError as error:
        return None, [f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"]
    except ValueError as error:  # e.g. an integer literal longer than Python's int digit limit
        return None, [f"invalid JSON: {_cut(str(error), _MESSAGE_CHARS)}"]
    if found:
        return None, _capped(list(dict.fromkeys(found)))
    depth = _depth(value)
    if depth > MAX_DEPTH:
        return None, [f"invalid JSON: nested {depth} levels deep; at most {MAX_DEPTH} levels of arrays/objects are allowed"]
    return value, []


def check_submission(
    value: Any, *, protocol_lookup: ProtocolLookup | None = None, base_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """The problems of a parsed submission: the top-level type, the schema and the semantics.

    A version 1 file gets one problem saying so, rather than one per field that changed.
    """
    if not isinstance(value, dict):
        return [f"{_ROOT}: a submission must be a JSON object {{...}}, got {_json_type(value)}"]
    if value.get("schema_version") == 1 and not isinstance(value.get("schema_version"), bool):
        return [f"schema_version: 1 is the retired format; version {SCHEMA_VERSION} adds each run's training_command, "
                "revision (hub ids) and per_post scores: re-run `rlhf-gym evaluate ... --submission FILE` to write it"]
    # The schema knows the common metrics only: a world's own (World.protocol_metrics) are
    # checked against the protocol in `_check_metric_sets`, not by the schema.
    own = _world_metric_names(value, protocol_lookup)
    schema_errors = schema_problems(_without_metrics(value, own) if own else value)
    flagged = {path for path, _ in schema_errors}
    semantic = semantic_problems(value, protocol_lookup=protocol_lookup, skip=flagged, base_dir=base_dir)
    return _capped([f"{path}: {message}" for path, message in schema_errors] + semantic)


def _world_metric_names(value: dict[str, Any], lookup: ProtocolLookup | None) -> tuple[str, ...]:
    """The metrics of the submission's protocol that are its world's own (none when the env or
    its protocol is unknown: `_check_env_and_protocol` reports that)."""
    from rlhf_gym.leaderboard.protocol import METRICS

    env_id = value.get("env_id")
    if not isinstance(env_id, str):
        return ()
    try:
        metrics = getattr((get_protocol if lookup is None else lookup)(env_id), "metrics", None) or ()
    except Exception:  # noqa: BLE001 - reported with its reason by _check_env_and_protocol
        return ()
    return tuple(m for m in metrics if m not in METRICS)


def _without_metrics(value: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``value`` without the metrics ``names`` in any run's ``metrics.<decoding>``."""
    value = copy.deepcopy(value)
    for _, run in _runs(value):
        metrics = run.get("metrics")
        for reported in metrics.values() if isinstance(metrics, dict) else ():
            if isinstance(reported, dict):
                for name in names:
                    reported.pop(name, None)
    return value


def schema_problems(value: Any) -> list[tuple[str, str]]:
    """Every schema error of ``value`` as ``(json path, message)``, sorted by path."""
    errors = [(json_path(error.absolute_path), _schema_message(error)) for error in _validator().iter_errors(value)]
    return sorted(errors, key=lambda e: (_path_sort_key(e[0]), e[1]))


def _schema_message(error: Any) -> str:
    """jsonschema's message, with the value shown as JSON and cut short, and what was expected."""
    instance, keyword, expected = error.instance, error.validator, error.validator_value
    if keyword == "minItems":
        return f"{len(instance)} item(s); expected at least {expected}"
    if keyword == "maxItems":
        return f"{len(instance)} items; expected at most {expected}"
    if keyword == "const":
        return f"{_show(instance)}; expected {_show(expected)}"
    if keyword == "type":
        got = "null" if instance is None else f"the {_json_type_name(instance)} {_show(instance)}"
        return f"expected {' or '.join(_listed(expected))}, got {got}"
    message = error.message
    if message.startswith(repr(instance)):  # "5 is not of type 'string'": show the value as JSON, cut short
        message = _show(instance) + message[len(repr(instance)) :]
    message = _cut(message, _MESSAGE_CHARS)
    if keyword == "pattern" and isinstance(error.schema, dict) and "description" in error.schema:
        message += f" (expected {error.schema['description']})"
    return message


def _listed(types: Any) -> list[str]:
    names = {"object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
             "number": "a number", "boolean": "a boolean", "null": "null"}
    return [names.get(t, str(t)) for t in ([types] if isinstance(types, str) else types)]


def _json_type_name(value: Any) -> str:
    """The JSON type of a parsed value: object, array, string, boolean, null, integer or number."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "integer" if isinstance(value, int) else "number"


def semantic_problems(
    value: Any,
    *,
    protocol_lookup: ProtocolLookup | None = None,
    skip: set[str] = frozenset(),
    base_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The checks the schema cannot express, on a parsed submission (any shape: never raises on one).

    A field whose path is in ``skip`` (the schema already reported it) is not checked again.
    ``base_dir`` is the folder local policy paths are relative to (None: unknown).
    """
    if not isinstance(value, dict):
        return [f"{_ROOT}: a submission must be a JSON object {{...}}, got {_json_type(value)}"]
    problems: list[str] = []
    problems += _check_integers(value)
    protocol, found = _check_env_and_protocol(value, protocol_lookup, skip)
    problems += found
    problems += _check_date(value, skip)
    problems += _check_agent(value, skip)
    problems += _check_runs(value, skip)
    problems += _check_policies(value, skip, base_dir)
    problems += _check_training_commands(value, skip)
    problems += _check_metric_sets(value, protocol)
    problems += _check_per_post(value, skip, protocol)
    problems += [f"{path}: {_show(number)} is not a finite number" for path, number in _non_finite(value)]
    return problems


def json_path(parts: Sequence[str | int]) -> str:
    """``["runs", 2, "metrics"]`` -> ``runs[2].metrics``; the empty path is ``(top level)``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text or _ROOT


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The submission schema (``schema.json``, package data of `rlhf_gym.leaderboard`)."""
    try:
        from importlib.resources import files

        text = files(__package__).joinpath("schema.json").read_text(encoding="utf-8") if __package__ else None
    except (ImportError, OSError, TypeError, ValueError):
        text = None
    if text is None:  # run as a plain file (python leaderboard/validate.py)
        text = Path(__file__).with_name("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


# Stages ---------------------------------------------------------------------------------
def _read(data: bytes | str | Path) -> tuple[bytes, list[str]]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    elif isinstance(data, str):
        if len(data) > MAX_BYTES:  # every character is at least one byte
            return b"", [_too_large(f"more than {MAX_BYTES} characters")]
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as error:
            bad = _show(data[error.start : error.end])
            return b"", [f"not valid UTF-8: the text has an unpaired surrogate {bad} at character {error.start}"]
    elif isinstance(data, os.PathLike):
        data = Path(data)
        try:
            size = data.stat().st_size
            if size > MAX_BYTES:
                return b"", [_too_large(f"{size} bytes")]
            with data.open("rb") as file:
                raw = file.read(MAX_BYTES + 1)  # a file may grow, or report size 0 (a pipe, /dev/zero)
        except OSError as error:
            return b"", [f"cannot read the file: {error.strerror or error}"]
    else:
        return b"", [f"cannot validate a {type(data).__name__}: expected bytes, JSON text (str) or a file Path"]
    if len(raw) > MAX_BYTES:
        return b"", [_too_large(f"more than {MAX_BYTES} bytes" if isinstance(data, Path) else f"{len(raw)} bytes")]
    return raw, []


def _too_large(size: str) -> str:
    return f"too large: {size}; a submission may have at most {MAX_BYTES} bytes ({MAX_BYTES // 1024} KiB)"


def _decode(raw: bytes) -> tuple[str, list[str]]:
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as error:
        byte = raw[error.start : error.start + 1].hex()
        return "", [f"not valid UTF-8: byte 0x{byte} at offset {error.start} ({error.reason}); a submission is UTF-8 JSON text"]


def _depth(value: Any) -> int:
    """The nesting depth of arrays/objects (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth  # enough to reject it
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """``pattern`` with ECMA-262 semantics for ``$``: the end of the string only.

    Python's ``$`` also matches before a final newline, so ``"2026-12-01\\n"`` would pass
    ``^...$``; `re.search` with ``\\Z`` in place of a final ``$`` does not.
    """
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    python_pattern = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    if re.search(python_pattern, instance) is None:
        yield ValidationError(f"{_show(instance)} does not match {pattern!r}")


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator, validators

    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    return validators.extend(Draft202012Validator, {"pattern": _pattern})(schema)


# Semantic checks --------------------------------------------------------------------------
def _check_integers(value: dict[str, Any]) -> list[str]:
    """JSON Schema counts ``1.0`` as an integer; a submission writes its integers as integers."""
    fields: list[tuple[str, Any]] = [(key, value.get(key)) for key in ("schema_version", "training_env_steps")]
    runs = value.get("runs")
    if isinstance(runs, list):
        fields += [(f"runs[{i}].seed", run.get("seed")) for i, run in enumerate(runs) if isinstance(run, dict)]
    return [
        f"{path}: {_show(number)} must be written as an integer ({int(number)}), without a decimal point or exponent"
        for path, number in fields
        if isinstance(number, float) and math.isfinite(number) and number.is_integer()
    ]


def _check_env_and_protocol(value: dict[str, Any], lookup: ProtocolLookup | None, skip: set[str]) -> tuple[Any, list[str]]:
    """The env's current protocol (None when there is none to check against) and the problems."""
    env_id = value.get("env_id")
    if "env_id" in skip or not isinstance(env_id, str):
        return None, []  # missing or of the wrong type: the schema said so
    from rlhf_gym.envs import SUITE

    suite = [env.env_id for env in SUITE]
    if env_id not in suite:
        return None, [f"env_id: {_show(env_id)} is not an env of the suite; expected one of: {', '.join(suite)}"]
    lookup = get_protocol if lookup is None else lookup
    try:
        protocol = lookup(env_id)
        current = {"protocol_version": str(protocol.version), "protocol_hash": str(protocol.hash)}
    except KeyError as error:
        reason = error.args[0] if error.args and isinstance(error.args[0], str) else "no protocol is defined for it"
        return None, [f"env_id: {_show(env_id)} has no leaderboard protocol ({_cut(reason, _MESSAGE_CHARS)})"]
    except Exception as error:  # a broken protocol is a problem to report, not a crash
        return None, [f"env_id: cannot load the protocol of {_show(env_id)} ({type(error).__name__}: {_cut(str(error), _MESSAGE_CHARS)})"]
    problems = []
    for key, expected in current.items():
        given = value.get(key)
        if key not in skip and isinstance(given, str) and given != expected:
            problems.append(
                f"{key}: {_show(given)} is not the current protocol's {key.removeprefix('protocol_')} for {env_id}, "
                f"which is {_show(expected)}; evaluate with the current protocol (rlhf-gym evaluate) and resubmit"
            )
    return protocol, problems


def _check_date(value: dict[str, Any], skip: set[str]) -> list[str]:
    date = value.get("date")
    if "date" in skip or not isinstance(date, str):
        return []
    try:
        datetime.date(int(date[0:4]), int(date[5:7]), int(date[8:10]))
    except ValueError as error:
        return [f"date: {_show(date)} is not a calendar date ({error}); expected YYYY-MM-DD"]
    return []


def _check_runs(value: dict[str, Any], skip: set[str]) -> list[str]:
    runs = value.get("runs")
    if not isinstance(runs, list):
        return []  # missing or of the wrong type: the schema said so
    problems = []
    if "runs" not in skip and len(runs) < MIN_RUNS:
        problems.append(f"runs: {len(runs)} run(s); a submission reports at least {MIN_RUNS} runs (distinct seeds)")
    first: dict[int, int] = {}
    for i, run in enumerate(runs):
        seed = run.get("seed") if isinstance(run, dict) else None
        if f"runs[{i}].seed" in skip or isinstance(seed, bool) or not isinstance(seed, (int, float)) or not math.isfinite(seed):
            continue
        if seed in first:
            problems.append(f"runs[{i}].seed: {_show(seed)} repeats the seed of runs[{first[seed]}]; every run needs a distinct seed")
        else:
            first[seed] = i
    return problems


def agent_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an agent (empty, or a checkpoint folder's generic name), or None.

    Example:
        >>> agent_name_problem("final_policy")[:60]
        '"final_policy" is the name of a checkpoint folder, not of an'
        >>> agent_name_problem("PPO (rlhf-gym, 20k steps)") is None
        True
    """
    if not name.strip():
        return "empty; name the agent (e.g. \"PPO, 20k env steps\")"
    if GENERIC_AGENT_NAME.fullmatch(name.strip()):
        return (f"{_show(name)} is the name of a checkpoint folder, not of an agent; name the method "
                "(e.g. \"PPO, 20k env steps\"): it is the row's label in the table")
    return None


def _check_agent(value: dict[str, Any], skip: set[str]) -> list[str]:
    agent = value.get("agent")
    name = agent.get("name") if isinstance(agent, dict) else None
    if "agent.name" in skip or not isinstance(name, str):
        return []
    problem = agent_name_problem(name)
    return [f"agent.name: {problem}"] if problem else []


def _runs(value: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """``(index, run)`` of every run that is an object (the schema reports the others)."""
    runs = value.get("runs")
    return [(i, run) for i, run in enumerate(runs) if isinstance(run, dict)] if isinstance(runs, list) else []


def _check_policies(value: dict[str, Any], skip: set[str], base_dir: str | os.PathLike[str] | None) -> list[str]:
    """Every run's ``policy`` is in an accepted form (`rlhf_gym.leaderboard.policy_spec`)."""
    from rlhf_gym.leaderboard.policy_spec import PolicyError, is_hub_id, local_path_problem, parse_policy, resolve_local

    problems = []
    for i, run in _runs(value):
        spec, revision = run.get("policy"), run.get("revision")
        where = f"runs[{i}].policy"
        if where in skip or not isinstance(spec, str) or f"runs[{i}].revision" in skip:
            continue
        try:
            location = parse_policy(spec)[1]
        except PolicyError as error:
            problems.append(f"{where}: {error}")
            continue
        if revision is not None:
            if not is_hub_id(location):
                problems.append(f"{where}: {_show(location)} is no hub id owner/name, yet the run has a revision; "
                                "a local path has no revision (a run with a revision names a hub id)")
            continue
        problem = local_path_problem(location)
        if problem:
            problems.append(f"{where}: {problem}")
        elif is_hub_id(location) and not (base_dir is not None and resolve_local(location, base_dir).is_dir()):
            problems.append(
                f"{where}: {_show(location)} reads as a hub id owner/name without \"revision\"; a hub id needs the 40-hex "
                f"commit it was evaluated at, so the checkpoint cannot change after verification (a local folder of that "
                f"name is written \"./{location}\", relative to the submission's folder)"
            )
    return problems


def _check_training_commands(value: dict[str, Any], skip: set[str]) -> list[str]:
    """``training_env_steps > 0`` needs every run's command; 0 needs every one null."""
    steps = value.get("training_env_steps")
    if "training_env_steps" in skip or isinstance(steps, bool) or not isinstance(steps, (int, float)) or steps < 0:
        return []
    problems = []
    for i, run in _runs(value):
        where = f"runs[{i}].training_command"
        if where in skip or "training_command" not in run:
            continue
        command = run["training_command"]
        if steps > 0 and not (isinstance(command, str) and command.strip()):
            problems.append(f"{where}: {_show(command)}; training_env_steps is {_show(steps)}, so every run needs the exact "
                            "shell command that trained its policy")
        elif steps == 0 and command is not None:
            problems.append(f"{where}: {_show(command)}; training_env_steps is 0 (a policy that was not trained), so the "
                            "command must be null (or give the training budget in training_env_steps)")
    return problems


def _check_metric_sets(value: dict[str, Any], protocol: Any) -> list[str]:
    """Each run reports exactly its protocol's metrics under each decoding.

    The schema requires the metrics every env has and allows the others; which of those a
    run must report depends on the protocol (`rlhf_gym.leaderboard.protocol.metric_set`),
    so a metric the schema already requires is not reported missing twice.
    """
    metrics = getattr(protocol, "metrics", None)
    if metrics is None:
        return []
    from rlhf_gym.leaderboard.protocol import METRICS, describe_needs

    version = _show(str(getattr(protocol, "version", "")))
    problems = []
    for i, run in _runs(value):
        runs_metrics = run.get("metrics")
        if not isinstance(runs_metrics, dict):
            continue
        for decoding in ("sampled", "greedy"):
            reported = runs_metrics.get(decoding)
            if not isinstance(reported, dict):
                continue
            where = f"runs[{i}].metrics.{decoding}"
            definition = load_schema()["$defs"][f"{decoding}_metrics"]
            expected = [key for key in metrics if key in definition["properties"]]  # greedy has no kl
            problems += [f"{where}: '{key}' is a required property of protocol {version}, whose env has {describe_needs(key)}"
                         for key in expected if key not in reported and key not in definition["required"]]
            problems += [f"{where}.{key}: protocol {version} has no {key}: it needs {describe_needs(key, metrics)}, which its env lacks"
                         for key in reported if key in definition["properties"] and key not in expected]
            # The world's own metrics (World.protocol_metrics), which the schema does not list: each
            # required, a number or null (null: no case among the test posts).
            for key in (key for key in metrics if key not in METRICS):
                if key not in reported:
                    problems.append(f"{where}: '{key}' is a required property of protocol {version} (a metric of its env's world)")
                elif reported[key] is not None and (isinstance(reported[key], bool) or not isinstance(reported[key], (int, float))):
                    problems.append(f"{where}.{key}: expected a number or null, got {_show(reported[key])}")
    return problems


def _check_per_post(value: dict[str, Any], skip: set[str], protocol: Any) -> list[str]:
    """Each run records the protocol's ``per_post`` pair, one score per post, whose means are the metrics'.

    Without a protocol to check against (none, or one without ``metrics``) the pair the file
    holds is checked.
    """
    from rlhf_gym.leaderboard.protocol import RANKINGS, ranked_metric

    posts, metrics = getattr(protocol, "posts", None), getattr(protocol, "metrics", None)
    required = RANKINGS[ranked_metric(metrics)] if metrics is not None else None
    version = _show(str(getattr(protocol, "version", "")))
    problems = []
    for i, run in _runs(value):
        per_post, run_metrics = run.get("per_post"), run.get("metrics")
        if not isinstance(per_post, dict):
            continue
        for decoding in ("sampled", "greedy"):
            scores = per_post.get(decoding)
            reported = run_metrics.get(decoding) if isinstance(run_metrics, dict) else None
            where = f"runs[{i}].per_post.{decoding}"
            if not isinstance(scores, dict):
                continue
            if required is not None:
                ranked = ranked_metric(metrics)
                problems += [f"{where}: '{key}' is a required property of protocol {version}, which ranks by {ranked}"
                             for key in required if key not in scores]
                problems += [f"{where}.{key}: protocol {version} records {required[0]} and {required[1]} (it ranks by {ranked}), "
                             f"not {key}" for pair in RANKINGS.values() if pair != required for key in pair if key in scores]
                pair = required
            else:
                pair = next((p for p in RANKINGS.values() if p[0] in scores or p[1] in scores), None)
            if pair is not None and isinstance(reported, dict):
                problems += _check_scores(scores, reported, pair, where, skip, posts, f"runs[{i}].metrics.{decoding}")
    return problems


def _check_scores(scores: dict[str, Any], reported: dict[str, Any], pair: tuple[str, str], where: str, skip: set[str],
                  posts: Any, metrics_path: str) -> list[str]:
    """One decoding's per-post pair: one score per post in both, and means equal to the metrics'."""
    from rlhf_gym.leaderboard.protocol import RANKINGS

    mine, sft = pair
    metric = next(name for name, keys in RANKINGS.items() if keys == pair)  # gold, or proxy_reward
    change_metric = "gold_change" if metric == "gold" else None  # the proxy's change is the table's, not a metric
    problems = []
    policy_scores, sft_scores = (_numbers(scores.get(key), f"{where}.{key}", skip) for key in pair)
    if policy_scores is not None and isinstance(posts, int) and len(policy_scores) != posts:
        problems.append(f"{where}.{mine}: {len(policy_scores)} scores; expected one per test post of the protocol ({posts})")
    if policy_scores is not None and sft_scores is not None and len(sft_scores) != len(policy_scores):
        problems.append(f"{where}.{sft}: {len(sft_scores)} scores for {len(policy_scores)} in {mine}; expected one per post in both")
        sft_scores = None
    decoding = metrics_path.rsplit(".", 1)[1]
    for key, values, name in ((metric, policy_scores, mine), (change_metric, _differences(policy_scores, sft_scores), f"{mine} - {sft}")):
        if key is None:
            continue
        value = reported.get(key)
        if not values or f"{metrics_path}.{key}" in skip or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        mean = math.fsum(values) / len(values)
        if not abs(mean - value) <= PER_POST_TOLERANCE:
            problems.append(
                f"{where}: the mean of {name} is {mean:.6f}, but metrics.{decoding}.{key} is {_show(value)} (off by "
                f"{abs(mean - value):.2g}; at most {PER_POST_TOLERANCE:g}); the per-post scores and the metrics must "
                "come from the same evaluation"
            )
    return problems


def _differences(gold: list[float] | None, sft_gold: list[float] | None) -> list[float] | None:
    return None if gold is None or sft_gold is None else [a - b for a, b in zip(gold, sft_gold)]


def _numbers(value: Any, path: str, skip: set[str]) -> list[float] | None:
    """``value`` if it is a list of finite numbers that the schema accepted, else None (the schema reported it)."""
    if not isinstance(value, list) or path in skip or any(p.startswith(f"{path}[") for p in skip):
        return None
    ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value)
    return value if ok else None


def _non_finite(value: Any) -> Iterator[tuple[str, float]]:
    """``(path, number)`` of every NaN or infinite float, without recursion."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            yield json_path(path), item
        elif isinstance(item, dict):
            stack.extend((child, (*path, key)) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(item))


# Formatting -----------------------------------------------------------------------------
def _show(value: Any) -> str:
    """A value as JSON, cut to `_SHOW_CHARS` (NaN and infinities as Python writes them)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return _cut(text, _SHOW_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    if value is None or isinstance(value, bool):
        return f"the literal {_show(value)}"
    return f"a number ({_show(value)})"


def _path_sort_key(path: str) -> tuple[Any, ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\[\]]+", path) if p)


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more problems"]


if __name__ == "__main__":
    sys.exit(validate_files(sys.argv[1:]))
