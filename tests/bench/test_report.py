"""The JSON file and the page: the marked section is replaced, text outside it kept, parts merged by device."""

from __future__ import annotations

import json

import pytest

from rlhf_gym.bench.report import END, INTRO, START, machine_info, replace_section, rows_of, stored_entries, update_doc, write_json

MACHINE = {"cores": 2, "cpu": "Test CPU", "torch": "2.13.0", "python": "3.11", "platform": "Linux", "device": "cpu",
           "device_name": "Test CPU"}


def _results(parts: dict, device: str = "cpu", date: str = "2026-12-01T10:00+00:00", command: str = "rlhf-gym bench") -> dict:
    return {"device": device, "date": date, "command": command, "machine": {**MACHINE, "device": device}, "parts": parts}


def _p1(ratio: float) -> dict:
    return {"headline": [{"figure": "P1 steps/s, N=256", "ratio": ratio, "value": f"{ratio:.1f}x", "goal": ">= 100x",
                          "met": ratio >= 100, "detail": "a vs b"}]}


MEMORY = {"headline": [{"figure": "Peak RSS", "ratio": None, "value": "900 MiB", "goal": None, "met": None, "detail": ""}]}


def test_the_section_is_replaced_idempotently_and_the_rest_kept():
    page = f"# Title\n\nBefore.\n\n{START}\nold table\n{END}\n\nAfter.\n"
    once = replace_section(page, "new table")
    assert once == f"# Title\n\nBefore.\n\n{START}\nnew table\n{END}\n\nAfter.\n"
    assert replace_section(once, "new table") == once


def test_a_page_without_markers_gets_the_section_appended():
    assert replace_section("# Title\n", "table") == f"# Title\n\n{START}\ntable\n{END}\n"


@pytest.mark.parametrize("page", [f"{START}\n{START}\n{END}\n", f"{END}\nx\n{START}\n"])
def test_broken_markers_are_refused(page):
    with pytest.raises(ValueError, match="must hold"):
        replace_section(page, "table")


def test_the_page_is_created_and_parts_merge_across_runs(tmp_path):
    page = tmp_path / "performance.md"
    update_doc(_results({"p1": _p1(150.0), "memory": MEMORY}), page)
    text = page.read_text()
    assert text.startswith(INTRO) and "**150.0x**" in text and "900 MiB" in text
    assert text.index("P1 steps/s") < text.index("Peak RSS")  # ratios first
    assert "`rlhf-gym bench`" in text and "2026-12-01" in text and "M1: 2 cores, Test CPU" in text

    page.write_text(text.replace("## Results", "## Results\n\nA note by hand."))
    update_doc(_results({"p1": _p1(90.0), "p4": {"skipped": "quick"}}, date="2026-12-02T10:00+00:00", command="rlhf-gym bench --parts p1"),
               page)
    text = page.read_text()
    assert "A note by hand." in text  # outside the section: kept
    assert "**90.0x**" in text and "**150.0x**" not in text and "**no**" in text  # p1 replaced, goal missed
    assert "900 MiB" in text and "2026-12-01" in text  # memory kept with its own date
    assert "P4" not in text.split(START)[1]  # a skipped part adds nothing
    assert set(stored_entries(text)) == {"cpu:p1", "cpu:memory"}

    update_doc(_results({"p1": _p1(200.0)}, device="cuda"), page)
    assert set(stored_entries(page.read_text())) == {"cpu:p1", "cpu:memory", "cuda:p1"}  # devices kept apart
    before = page.read_text()
    update_doc(_results({"p1": _p1(200.0)}, device="cuda"), page)
    assert page.read_text() == before  # rerunning the same figures changes nothing


def test_a_failed_part_shows_its_error():
    rows = rows_of("p3", {"error": "ModuleNotFoundError: No module named 'rlhf_gym.bench.training'"})
    assert rows[0]["value"] == "not measured" and "No module named" in rows[0]["detail"]


def test_a_part_without_headline_shows_its_ratios():
    rows = rows_of("p3", {"ratio_ppo": 1.7, "threads": 2, "goal": 1.5})
    assert [(row["figure"], row["value"]) for row in rows] == [("P3 training: ratio_ppo", "1.7x")]
    assert rows_of("p4", {"png": "x.png"})[0]["value"] == "see the JSON"


def test_the_json_holds_everything(tmp_path):
    results = _results({"p1": _p1(150.0)})
    path = write_json(results, tmp_path / "bench.json")
    assert json.loads(path.read_text()) == results


def test_machine_info_names_cores_torch_and_device():
    info = machine_info("cpu")
    assert info["cores"] >= 1 and info["torch"] and info["device"] == "cpu" and info["device_name"]
