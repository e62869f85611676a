"""`rlhf_gym.leaderboard.build`: validation first, honest intervals, ties, budget, the README markers, the page.

Every submission here is a synthetic schema-version-2 file: per-post gold scores made from
a shared post difficulty (every run answers the same posts), a run effect and noise, with
the metrics computed from them, validated by the real `rlhf_gym.leaderboard.validate`
against a stand-in protocol of `POSTS` posts. Two agent names are hostile:
``<script>alert(1)</script>`` and one with ``|`` (a Markdown table separator).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rlhf_gym.leaderboard import build as lb
from rlhf_gym.leaderboard import plot, validate
from rlhf_gym.leaderboard.intervals import crossed_bootstrap
from rlhf_gym.leaderboard.protocol import METRICS

ENV = "RLHF-Summarize-v0"
POSTS = 64
PROTOCOL = SimpleNamespace(env_id=ENV, version="summarize-test-v1", hash="sha256:" + "0123456789abcdef" * 4, posts=POSTS,
                           metrics=METRICS)
XSS = "<script>alert(1)</script>"
SFT_POLICY = "../../envs/summarize/assets/sft_policy"
POST_EFFECT = np.random.default_rng(0).normal(0.0, 0.08, POSTS)  # one test set, shared by every submission


def per_run_scores(mean: float, seed: int, noise: float = 0.03) -> list[float]:
    """One run's per-post gold: ``mean`` + the post's difficulty + noise, in [0, 1], 6 decimals."""
    rng = np.random.default_rng(seed)
    return [round(float(v), 6) for v in np.clip(mean + POST_EFFECT + rng.normal(0, noise, POSTS), 0, 1)]


def make_submission(
    name: str,
    golds: list[float],
    kls: list[float] | None = None,
    *,
    steps: int = 20000,
    code: str | None = None,
    policy: str | None = None,
    env_id: str = ENV,
    salt: int = 0,
    sft: bool = False,
) -> dict[str, Any]:
    """A valid v2 submission: one run per entry of ``golds`` (the run's mean gold before noise).

    ``policy``: every run names this policy (runs that differ only in their sampling seed);
    by default each run names its own checkpoint. ``steps == 0`` makes it untrained (no
    commands). The SFT policy's scores of seed k are the same in every submission (the
    protocol's sampling stream of seed k); ``sft=True`` makes the policy that SFT policy.
    """
    kls = kls if kls is not None else [1.0 + 0.1 * i for i in range(len(golds))]
    runs = []
    for seed, (gold, kl) in enumerate(zip(golds, kls, strict=True)):
        sft_gold = per_run_scores(0.45, 500 + seed)
        sampled_gold = sft_gold if sft else per_run_scores(gold, 1000 * salt + seed)
        greedy_gold = [min(1.0, g + 0.02) for g in sampled_gold]
        per_post = {"sampled": {"gold": sampled_gold, "sft_gold": sft_gold}, "greedy": {"gold": greedy_gold, "sft_gold": sft_gold}}

        def metrics(scores: list[float], with_kl: bool, seed: int = seed, kl: float = kl, sft: list[float] = sft_gold) -> dict[str, float]:
            values = {
                "gold": float(np.mean(scores)), "gold_change": float(np.mean(np.subtract(scores, sft))), "gold_change_sem": 0.01,
                "win_rate": 0.2 + 0.01 * seed, "proxy_reward": -1.0 + 0.5 * seed, "rouge_l": 0.3 + 0.01 * seed, "bleu": 10.0 + seed,
                "perplexity": 3.0 + 0.1 * seed, "distinct_1": 0.6, "distinct_2": 0.85 + 0.01 * seed, "response_length": 40.0 + seed,
                "eos_rate": 0.95,
            }
            return values | ({"kl": kl} if with_kl else {})

        runs.append({
            "seed": seed,
            "policy": policy or f"../checkpoints/{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-') or 'agent'}/seed{seed}",
            "training_command": f"rlhf-gym train --agent ppo --total-steps {steps} --seed {seed} --out x/{seed}" if steps else None,
            "metrics": {"sampled": metrics(sampled_gold, True), "greedy": metrics(greedy_gold, False)},
            "per_post": per_post,
        })
    return {
        "schema_version": 2,
        "env_id": env_id,
        "protocol_version": PROTOCOL.version,
        "protocol_hash": PROTOCOL.hash,
        "agent": {"name": name, "paper": "https://arxiv.org/abs/2403.17031" if code else None, "code": code},
        "training_env_steps": steps,
        "hardware": "2 CPU cores",
        "date": "2026-12-01",
        "runs": runs,
    }


# stem -> submission. PPO and RLOO are 0.005 apart (overlapping intervals: tied); best-of-4
# and SFT are one policy under three sampling seeds; SFT and best-of-4 train nothing.
AGENTS: dict[str, dict[str, Any]] = {
    "ppo": make_submission("PPO (rlhf-gym)", [0.70, 0.71, 0.69], [5.0, 6.0, 5.5], code="https://github.com/x/ppo", salt=1),
    "rloo": make_submission("rloo", [0.695, 0.70, 0.69], [3.0, 3.2, 3.1], steps=130000, salt=2),
    "xss": make_submission(XSS, [0.62, 0.63, 0.61], [2.0, 2.1, 2.2], salt=3),
    "pipe": make_submission("best|of|4", [0.55, 0.55, 0.55], [0.64, 0.64, 0.64], steps=0, policy=f"best-of-4:{SFT_POLICY}", salt=4),
    "sft": make_submission("SFT `v0`", [0.45, 0.45, 0.45], [0.0, 0.0, 0.0], steps=0, policy=SFT_POLICY, sft=True),
}


@pytest.fixture
def protocol(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """`PROTOCOL` (``POSTS`` test posts), patched in as the protocol submissions are validated against."""
    def lookup(env_id: str) -> SimpleNamespace:
        if env_id != ENV:
            raise KeyError(f"env {env_id!r} has no leaderboard protocol")
        return PROTOCOL

    monkeypatch.setattr(validate, "get_protocol", lookup)
    return PROTOCOL


def write_submissions(folder: Path, agents: dict[str, dict[str, Any]] = AGENTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, submission in agents.items():
        (folder / f"{stem}.json").write_text(json.dumps(submission), encoding="utf-8")
    return folder


@pytest.fixture
def built(tmp_path: Path, protocol: SimpleNamespace) -> tuple[str, str]:
    """(README.md, index.html) built from `AGENTS` into a fresh folder."""
    lb.build(write_submissions(tmp_path / "submissions"), tmp_path / "out")
    return (tmp_path / "out" / "README.md").read_text(encoding="utf-8"), (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def _headers() -> list[str]:
    return [f"{c.header}: {c.note}" if c.note else c.header for c in lb.COLUMNS]


def _markdown_rows(readme: str, env_id: str = ENV) -> list[dict[str, str]]:
    """Each body row of the env's table as {column key: cell} (split on unescaped pipes)."""
    section = readme.split(f"## {lb.markdown_escape(env_id)}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header, rule, *body = lines
    assert [c.strip() for c in re.split(r"(?<!\\)\|", header)[1:-1]] == _headers()
    assert rule.count("|") == len(lb.COLUMNS) + 1
    keys = [c.key for c in lb.COLUMNS]
    return [dict(zip(keys, (c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]), strict=True)) for line in body]


def _by_hand(stem: str) -> tuple[float, float]:
    """(mean gold, mean paired change) over every run and post, computed from the file's arrays."""
    runs = AGENTS[stem]["runs"]
    gold = np.array([run["per_post"]["sampled"]["gold"] for run in runs])
    sft = np.array([run["per_post"]["sampled"]["sft_gold"] for run in runs])
    return float(gold.mean()), float((gold - sft).mean())


class _Page(HTMLParser):
    """Per table row: its data-source, and each cell's (class, data-value, title, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str, list[dict[str, str]]]] = []
        self._cell: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-source" in values:
            self.rows.append((values["data-source"], values.get("class", ""), []))
        elif tag == "td" and self.rows:
            self._cell = {"class": values.get("class", ""), "value": values.get("data-value", ""),
                          "title": values.get("title", ""), "text": ""}
            self.rows[-1][2].append(self._cell)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


def page_rows(page: str) -> list[tuple[str, str, list[dict[str, str]]]]:
    parser = _Page()
    parser.feed(page)
    return parser.rows


# Validation first ------------------------------------------------------------------------
def test_a_two_seed_file_never_reaches_the_table(tmp_path, protocol, capsys):
    """The issue's case: a 2-seed file with a tight interval would have ranked #2. It stops the build."""
    folder = write_submissions(tmp_path / "submissions")
    two = make_submission("two seeds, tight", [0.80, 0.80], salt=9)
    (folder / "two-seeds.json").write_text(json.dumps(two), encoding="utf-8")
    with pytest.raises(lb.SubmissionError) as error:
        lb.build(folder, tmp_path / "out")
    message = str(error.value)
    first = validate.validate_submission(folder / "two-seeds.json")[0]
    assert first.startswith("runs: 2 ") and "3" in first  # validate's words: "runs: 2 item(s); expected at least 3"
    assert f"\n  two-seeds.json: {first}" in message
    assert "1 of the 6 submission(s)" in message and "nothing was written" in message
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit, match=r"(?s)leaderboard build: .*two-seeds\.json: runs: 2 "):
        lb.build_main(str(folder), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and "writing" not in capsys.readouterr().out
    (folder / "two-seeds.json").unlink()
    lb.build(folder, tmp_path / "out")
    assert "two seeds" not in (tmp_path / "out" / "README.md").read_text(encoding="utf-8")


def _break(change: str, submission: dict[str, Any]) -> None:
    """Make ``submission`` fail one validate check."""
    run = submission["runs"][1]
    if change == "schema-version-1":
        submission["schema_version"] = 1
    elif change == "stale-protocol-hash":
        submission["protocol_hash"] = "sha256:" + "f" * 64
    elif change == "per-post-mean-off":
        run["metrics"]["sampled"]["gold"] += 0.01
    elif change == "per-post-length":
        run["per_post"]["sampled"]["gold"] = run["per_post"]["sampled"]["gold"][:-1]
    elif change == "no-training-command":
        run["training_command"] = None
    elif change == "repeated-seed":
        run["seed"] = 0
    elif change == "hub-id-without-revision":
        run["policy"] = "someone/ppo-model"
    elif change == "unknown-field":
        run["note"] = "hi"
    else:
        raise AssertionError(change)


@pytest.mark.parametrize("change", ["schema-version-1", "stale-protocol-hash", "per-post-mean-off", "per-post-length",
                                    "no-training-command", "repeated-seed", "hub-id-without-revision", "unknown-field"])
def test_a_file_failing_any_validate_check_is_not_ranked(tmp_path, protocol, change):
    folder = write_submissions(tmp_path / "submissions")
    broken = json.loads(json.dumps(AGENTS["ppo"]))
    _break(change, broken)
    path = folder / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    problems = validate.validate_submission(path)
    assert problems, change
    with pytest.raises(lb.SubmissionError) as error:
        lb.build(folder, tmp_path / "out")
    assert f"  broken.json: {problems[0]}" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_unreadable_files_are_named_too(tmp_path, protocol):
    folder = write_submissions(tmp_path / "submissions")
    (folder / "a-broken.json").write_text('{"env_id": ', encoding="utf-8")
    (folder / "b-array.json").write_text("[1, 2]", encoding="utf-8")
    (folder / "notes.txt").write_text("not a submission", encoding="utf-8")
    with pytest.raises(lb.SubmissionError, match=r"2 of the 7 submission") as error:
        lb.build(folder, tmp_path / "out")
    assert "a-broken.json: invalid JSON" in str(error.value)
    assert "b-array.json: (top level): a submission must be a JSON object" in str(error.value)
    with pytest.raises(FileNotFoundError, match="no submissions folder"):
        lb.build(tmp_path / "missing", tmp_path / "out")


# What the table shows -------------------------------------------------------------------
def test_gold_is_the_mean_over_runs_and_posts_with_the_crossed_bootstrap_interval(built):
    readme, page = built
    rows = _markdown_rows(readme)
    by_agent = {row["agent"]: row for row in rows}
    for stem, submission in AGENTS.items():
        row = next(r for name, r in by_agent.items() if lb.markdown_escape(submission["agent"]["name"]) in name)
        gold, change = _by_hand(stem)
        table = np.array([run["per_post"]["sampled"]["gold"] for run in submission["runs"]])
        sft = np.array([run["per_post"]["sampled"]["sft_gold"] for run in submission["runs"]])
        interval, change_interval = crossed_bootstrap(table), crossed_bootstrap(table - sft)
        assert row["gold"] == f"{gold:.3f} [{interval.low:.3f}, {interval.high:.3f}]"
        assert row["gold_change"] == f"{change:+.3f} [{change_interval.low:+.3f}, {change_interval.high:+.3f}]"
        assert interval.low < gold < interval.high
        # Other metrics: the plain mean over runs, no interval.
        kls = [run["metrics"]["sampled"]["kl"] for run in submission["runs"]]
        assert row["kl"] == f"{np.mean(kls):.2f}"
        assert row["runs"] == "3"
    # The SFT row's paired change is zero post by post.
    assert by_agent[f"{lb.markdown_escape('SFT `v0`')} {lb.SEED_ONLY_MARK}"]["gold_change"] == "+0.000 [+0.000, +0.000]"
    # On the page, the range over runs is labelled as a range; no IQM, no "CI", no "stratified" anywhere.
    kl_titles = [cell["title"] for _, _, cells in page_rows(page) for cell in cells if "kl" in cell["class"].split()]
    assert kl_titles[0] == "mean 5.50; range over 3 runs [5.00, 6.00]"
    for text in (readme, page):
        assert not re.search(r"\bIQM\b|\bCI\b|confidence interval|stratified|interquartile", text)
        assert "95% bootstrap interval over seeds and test posts" in text


def test_ranks_tie_overlapping_intervals_and_the_budget_stands_next_to_the_agent(built):
    readme, page = built
    rows = _markdown_rows(readme)
    keys = [c.key for c in lb.COLUMNS]
    assert keys.index("budget") == keys.index("agent") + 1  # right after the agent, before any metric
    names = [row["agent"] for row in rows]
    assert names[0].startswith("[PPO (rlhf-gym)]") and names[1] == "rloo"
    # PPO and RLOO (130k steps) are 0.005 apart with overlapping intervals: a shared rank, not a win on 0.001.
    gold = {stem: crossed_bootstrap(np.array([r["per_post"]["sampled"]["gold"] for r in AGENTS[stem]["runs"]])) for stem in AGENTS}
    assert gold["ppo"].overlaps(gold["rloo"]) and not gold["rloo"].overlaps(gold["xss"])
    assert [row["rank"] for row in rows] == ["1=", "1=", "3", "4", "5"]
    assert [row["budget"] for row in rows] == ["20,000", "130,000", "20,000", "0 (decoding)", "0 (decoding)"]
    assert "rows that share a rank are marked `=`" in readme and "`0 (decoding)` marks the decoding baselines" in readme
    html_rows = page_rows(page)
    assert [cls for _, cls, _ in html_rows] == ["", "", "", "decoding", "decoding"]
    assert [cells[0]["text"] for _, _, cells in html_rows] == ["1=", "1=", "3", "4", "5"]
    assert "as many rows lie clearly above it" in html_rows[1][2][0]["title"]
    assert "rows that share a rank are marked" in page


def test_rows_of_one_policy_under_sampling_seeds_are_marked(built):
    readme, page = built
    rows = dict(zip(["ppo", "rloo", "xss", "pipe", "sft"], _markdown_rows(readme), strict=True))
    assert rows["sft"]["agent"].endswith(f" {lb.SEED_ONLY_MARK}") and rows["pipe"]["agent"].endswith(f" {lb.SEED_ONLY_MARK}")
    assert not any(rows[s]["agent"].endswith(lb.SEED_ONLY_MARK) for s in ("ppo", "rloo", "xss"))
    assert f"{lb.SEED_ONLY_MARK} after an agent: its runs are one policy under different sampling seeds" in readme
    assert page.count('class="seed-only"') == 2 and f'<p class="note">{lb.SEED_ONLY_MARK} one policy under different sampling seeds' in page


def test_the_outputs_name_the_folder_they_were_built_from(tmp_path, protocol, built):
    readme, page = built
    source = str(tmp_path / "submissions")  # outside the repository: as given
    assert f"Built from {lb.markdown_escape(source + '/*.json')} by `rlhf-gym leaderboard build --submissions FOLDER --out DIR`." in readme
    assert f"Built from <code>{source}/*.json</code>" in page
    assert "leaderboard/submissions" not in readme and "leaderboard/submissions" not in page
    if lb.REPO_ROOT is not None:  # a checkout: the repository's folders are named relative to it
        assert lb.shown_path(lb.REPO_ROOT / "leaderboard" / "submissions") == "leaderboard/submissions"
        assert lb.shown_path(lb.DEFAULT_SUBMISSIONS) == "leaderboard/submissions"
        command, note = lb._rebuild("leaderboard/submissions")
        assert command == "rlhf-gym leaderboard build" and "rewrites the repository's README.md table and index.html" in note


# README.md: the generated part between its markers ---------------------------------------
def test_readme_keeps_the_hand_written_text_around_the_markers(tmp_path, protocol):
    folder = write_submissions(tmp_path / "submissions")
    out = tmp_path / "out"
    out.mkdir()
    hand = f"# Leaderboard\n\nHow to submit: by hand.\n\n{lb.BEGIN_MARKER}\nold table\n{lb.END_MARKER}\n\n## Verify\n\nAlso by hand.\n"
    (out / "README.md").write_text(hand, encoding="utf-8")
    lb.build(folder, out)
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# Leaderboard\n\nHow to submit: by hand.\n\n" + lb.BEGIN_MARKER + "\n\nBuilt from ")
    assert readme.endswith(f"{lb.END_MARKER}\n\n## Verify\n\nAlso by hand.\n")
    assert "old table" not in readme and len(_markdown_rows(readme)) == len(AGENTS)
    lb.build(folder, out)  # idempotent
    assert (out / "README.md").read_text(encoding="utf-8") == readme


def test_a_readme_without_markers_is_not_overwritten(tmp_path, protocol):
    folder = write_submissions(tmp_path / "submissions")
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("# My own notes\n", encoding="utf-8")
    with pytest.raises(lb.OutputError, match=r"README\.md exists and has no generated-table markers.*--out DIR"):
        lb.build(folder, out)
    assert (out / "README.md").read_text(encoding="utf-8") == "# My own notes\n" and not (out / "index.html").exists()
    with pytest.raises(SystemExit, match="no generated-table markers"):
        lb.build_main(str(folder), str(out))


def test_build_is_deterministic_and_groups_envs(tmp_path, protocol, monkeypatch):
    folder = write_submissions(tmp_path / "submissions")
    other_protocol = SimpleNamespace(env_id="RLHF-Other-v0", version="other-v1", hash=PROTOCOL.hash, posts=POSTS)
    monkeypatch.setattr(validate, "get_protocol", lambda env_id: {ENV: PROTOCOL, "RLHF-Other-v0": other_protocol}[env_id])
    import rlhf_gym.envs

    monkeypatch.setattr(rlhf_gym.envs, "SUITE", [*rlhf_gym.envs.SUITE, SimpleNamespace(env_id="RLHF-Other-v0")])
    other = make_submission("other env agent", [0.2, 0.3, 0.4], env_id="RLHF-Other-v0", salt=7) | {"protocol_version": "other-v1"}
    (folder / "other.json").write_text(json.dumps(other), encoding="utf-8")
    lb.build(folder, tmp_path / "a")
    lb.build(folder, tmp_path / "b")
    for name in ("README.md", "index.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    readme = (tmp_path / "a" / "README.md").read_text(encoding="utf-8")
    assert readme.index("## RLHF-Other-v0") < readme.index(f"## {ENV}")
    assert len(_markdown_rows(readme, "RLHF-Other-v0")) == 1 and len(_markdown_rows(readme)) == len(AGENTS)
    page = (tmp_path / "a" / "index.html").read_text(encoding="utf-8")
    assert page.count('<svg class="plot"') == 2 and page.count('<g class="submission"') == len(AGENTS) + 1


NO_GOLD_ENV = "RLHF-NoGold-v0"


def proxy_submission(name: str, mean: float, salt: int) -> dict[str, Any]:
    """A valid submission of an env without a gold judge: no gold metrics; per-post proxy scores
    (a post effect shared by every run, and noise) whose means are the metrics."""
    submission = make_submission(name, [0.5, 0.5, 0.5], env_id=NO_GOLD_ENV, salt=salt) | {"protocol_version": "nogold-test-v1"}
    for seed, run in enumerate(submission["runs"]):
        rng = np.random.default_rng(1000 * salt + seed)
        sft = [round(float(v), 6) for v in -2.0 + 10 * POST_EFFECT + rng.normal(0, 0.3, POSTS)]
        for decoding, shift in (("sampled", 0.0), ("greedy", 0.5)):
            proxy = [round(float(v), 6) for v in mean + shift + 10 * POST_EFFECT + rng.normal(0, 0.3, POSTS)]
            run["per_post"][decoding] = {"proxy": proxy, "sft_proxy": sft}
            metrics = run["metrics"][decoding]
            for key in ("gold", "gold_change", "gold_change_sem", "win_rate"):
                del metrics[key]
            metrics["proxy_reward"] = float(np.mean(proxy))
    return submission


def test_an_env_without_a_gold_judge_is_ranked_by_the_proxy_and_says_so(tmp_path, protocol, monkeypatch):
    from rlhf_gym.leaderboard.protocol import metric_set

    no_gold = SimpleNamespace(env_id=NO_GOLD_ENV, version="nogold-test-v1", hash=PROTOCOL.hash, posts=POSTS,
                              metrics=metric_set(gold_judge=False, references=True))
    monkeypatch.setattr(validate, "get_protocol", lambda env_id: {ENV: PROTOCOL, NO_GOLD_ENV: no_gold}[env_id])
    import rlhf_gym.envs

    monkeypatch.setattr(rlhf_gym.envs, "SUITE", [*rlhf_gym.envs.SUITE, SimpleNamespace(env_id=NO_GOLD_ENV)])
    only_gold = write_submissions(tmp_path / "gold-only")
    lb.build(only_gold, tmp_path / "gold-only-out")
    folder = write_submissions(tmp_path / "submissions")
    proxies = {"low": proxy_submission("proxy low", -1.0, salt=11), "high": proxy_submission("proxy high", 1.5, salt=12)}
    for stem, submission in proxies.items():
        (folder / f"nogold-{stem}.json").write_text(json.dumps(submission), encoding="utf-8")
    lb.build(folder, tmp_path / "out")
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"## {NO_GOLD_ENV}\n", 1)[1].split("\n## ", 1)[0]
    assert lb.proxy_note() in section and "*Ranked by proxy reward (no gold judge)*" in section
    header, _, *body = [line for line in section.splitlines() if line.startswith("|")]
    headers = [c.strip() for c in re.split(r"(?<!\\)\|", header)[1:-1]]
    assert headers[3] == f"proxy: ranked by proxy reward (no gold judge); {lb._INTERVAL_NOTE}"
    assert not any(h.startswith(("gold", "win rate", "greedy gold")) for h in headers)
    assert {"proxy change vs SFT: " + lb._INTERVAL_NOTE, "greedy proxy", "KL", "ROUGE-L", "BLEU"} <= set(headers)
    cells = [dict(zip(headers, (c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]), strict=True)) for line in body]
    assert [row["agent"] for row in cells] == ["proxy high", "proxy low"]  # ranked by the proxy's mean
    table = np.array([run["per_post"]["sampled"]["proxy"] for run in proxies["high"]["runs"]])
    interval = crossed_bootstrap(table)
    assert cells[0][headers[3]] == f"{table.mean():.3f} [{interval.low:.3f}, {interval.high:.3f}]"
    # The gold env's table is the one it is without the other env (columns are per table).
    gold_section = readme.split(f"## {ENV}\n", 1)[1]
    alone = (tmp_path / "gold-only-out" / "README.md").read_text(encoding="utf-8").split(f"## {ENV}\n", 1)[1]
    assert gold_section == alone
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert page.count('<p class="note proxy-ranked">') == 1 and "<h3>Proxy against KL</h3>" in page and "<h3>Gold against KL</h3>" in page
    assert 'aria-label="proxy against KL, one point per submission"' in page


def test_empty_folder_builds_an_empty_board(tmp_path, protocol):
    (tmp_path / "submissions").mkdir()
    lb.build(tmp_path / "submissions", tmp_path / "out")
    assert "No submissions yet." in (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "No submissions yet." in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def test_build_main_says_where_it_writes(tmp_path, protocol, monkeypatch, capsys):
    folder = write_submissions(tmp_path / "submissions")
    lb.build_main(str(folder), str(tmp_path / "out"))
    out = capsys.readouterr().out
    readme, page = tmp_path / "out" / "README.md", tmp_path / "out" / "index.html"
    assert out.startswith(f"writing {readme} (the table between its markers) and {page}\n")
    assert f"wrote {tmp_path / 'out' / 'README.md'}" in out and f"wrote {tmp_path / 'out' / 'index.html'}" in out
    assert f"read {len(AGENTS)} submission(s) for 1 env(s)" in out and "first: PPO (rlhf-gym) (gold 0." in out
    # Without --out: the repository's published files, and it says so before writing.
    monkeypatch.setattr(lb, "DEFAULT_SUBMISSIONS", folder)
    monkeypatch.setattr(lb, "DEFAULT_OUT", tmp_path / "published")
    lb.build_main()
    out = capsys.readouterr().out
    assert out.startswith(f"writing the published leaderboard: {tmp_path / 'published' / 'README.md'}")
    assert "pass --out DIR to build elsewhere" in out.splitlines()[0]
    assert (tmp_path / "published" / "README.md").is_file() and (tmp_path / "published" / "index.html").is_file()


# Escaping ------------------------------------------------------------------------------------
def test_readme_escapes_submission_strings(built):
    readme, _ = built
    assert r"best\|of\|4" in readme and "best|of" not in readme
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in readme and "<script>" not in readme
    assert r"SFT \`v0\`" in readme
    assert lb.markdown_escape("a\nb\r\nc|d") == r"a b c\|d"


def test_html_escapes_every_submission_string(built):
    _, page = built
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert page.count("<script") == 1  # the page's own script, nothing else
    assert "best|of|4" in page  # `|` needs no escaping in HTML
    assert "SFT `v0`" in page
    assert not re.search(r"""<(link|img|iframe)\b|\bsrc=|https?://(?!arxiv\.org/|github\.com/x/|www\.w3\.org/2000/svg)""", page)


def test_hostile_urls_are_not_linked(tmp_path, protocol):
    submission = make_submission("evil", [0.5, 0.5, 0.5], code="https://example.org/x")
    submission["agent"]["paper"] = 'https://example.org/"onmouseover="alert(1)'  # a valid URL by the schema
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "evil.json").write_text(json.dumps(submission), encoding="utf-8")
    lb.build(folder, tmp_path / "out")
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert '"onmouseover' not in page and "&quot;onmouseover=&quot;alert(1)" in page
    assert "https://example.org/%22onmouseover=%22alert%281%29" in readme
    # validate rejects other schemes and whitespace; the build would not link them either.
    for url in ("javascript:alert(1)", "https://example.org/a b", "data:text/html,x", None, ""):
        assert lb.safe_url(url) is None
    assert lb.safe_url("https://a.b/c") == "https://a.b/c"


# The page ------------------------------------------------------------------------------------
def _plot(page: str) -> list[tuple[str, str, float, float, str]]:
    """Per plot point: (data-source, fill colour, label x, label y, label text)."""
    groups = re.findall(r'<g class="submission" data-source="([^"]+)">(.*?)</g>', page, flags=re.S)
    out = []
    for source, body in groups:
        fill = re.search(r'class="point" fill="([^"]+)"', body).group(1)
        x, y, text = re.search(r'<text class="label" x="([^"]+)" y="([^"]+)">([^<]*)</text>', body).groups()
        out.append((source, fill, float(x), float(y), text))
    return out


def test_each_agent_keeps_its_colour_when_rows_are_added(tmp_path, protocol):
    few = {stem: AGENTS[stem] for stem in ("xss", "sft")}
    lb.build(write_submissions(tmp_path / "few", few), tmp_path / "a")
    lb.build(write_submissions(tmp_path / "all"), tmp_path / "b")
    colours_few = {source: fill for source, fill, *_ in _plot((tmp_path / "a" / "index.html").read_text(encoding="utf-8"))}
    colours_all = {source: fill for source, fill, *_ in _plot((tmp_path / "b" / "index.html").read_text(encoding="utf-8"))}
    assert colours_few == {source: colours_all[source] for source in colours_few}
    assert colours_all == {f"{stem}.json": plot.agent_marker(AGENTS[stem]["agent"]["name"])[0] for stem in AGENTS}
    assert len(plot.PALETTE) == len(set(plot.PALETTE)) == 20
    # The marker is the name's alone (a stable hash), and the table's swatch draws the same one.
    markers = {plot.agent_marker(f"agent {i}") for i in range(400)}
    assert {colour for colour, _ in markers} == set(plot.PALETTE) and {shape for _, shape in markers} == set(plot.SHAPES)
    page = (tmp_path / "b" / "index.html").read_text(encoding="utf-8")
    for submission in AGENTS.values():
        assert plot.marker_svg(submission["agent"]["name"], 6, 6, 4.5, "point") in page


def test_label_placement_never_overprints():
    """Eleven points in a clump (the real board's rloo/grpo and SB3 pairs): no two label boxes meet, none covers a point."""
    rng = np.random.default_rng(3)
    points = [(300 + float(dx), 200 + float(dy)) for dx, dy in rng.normal(0, 6, (11, 2))] + [(600.0, 40.0), (70.0, 400.0)]
    labels = [plot.label_text(f"agent number {i} with a long name" if i % 3 == 0 else f"agent {i}") for i in range(len(points))]
    widths = [plot.label_width(text) for text in labels]
    area = plot.Box(64, 16, 684, 416)
    placements = plot.place_labels(points, widths, area, column_x=700)
    boxes = [p.box for p in placements]
    for i, box in enumerate(boxes):
        assert box.x1 - box.x0 == pytest.approx(widths[i])
        assert box.inside(area) or box.x0 == 700, box
        for j in range(i + 1, len(boxes)):
            assert not box.overlaps(boxes[j]), (i, j)
        for x, y in points:
            assert not box.overlaps(plot.Box(x - plot.MARKER_HALF, y - plot.MARKER_HALF, x + plot.MARKER_HALF, y + plot.MARKER_HALF))
    assert any(p.leader for p in placements)  # a clump this tight needs leader lines
    assert plot.place_labels(points, widths, area, 700) == placements  # deterministic
    assert plot.label_text("x" * 40) == "x" * (plot.LABEL_CHARS - 1) + "\u2026" and plot.label_width("ab") == 2 * plot.LABEL_COLUMN_PX
    assert plot.label_width("\u4e2d") == 2 * plot.LABEL_COLUMN_PX  # a wide character takes two columns


def test_the_extra_columns_are_behind_a_switch(built):
    _, page = built
    extras = [c for c in lb.COLUMNS if c.extra]
    assert {c.key for c in extras} >= {"proxy_reward", "rouge_l", "bleu", "perplexity", "date"}
    assert not any(c.extra for c in lb.COLUMNS if c.key in ("rank", "agent", "budget", "gold", "gold_change", "kl", "runs"))
    assert 'class="show-extra" data-table="board-0"' in page and "table.board .extra { display: none; }" in page
    for _, _, cells in page_rows(page):
        assert [("extra" in cell["class"].split()) for cell in cells] == [c.extra for c in lb.COLUMNS]
