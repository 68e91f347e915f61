"""Tests of curation_dagster/filters/decontamination.py: word n-gram overlap with evaluation sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard

from curation_dagster.errors import SpecError
from curation_dagster.filters.decontamination import Decontamination, load_eval_ngrams, normalized_words
from curation_dagster.spec import DecontaminationSettings, parse_spec

EVAL_ITEM = (
    "Passage: The harbour master counted forty fishing boats returning before the storm reached the "
    "northern cliffs. Question: How many boats returned?"
)
# Shares the 13 words "the harbour master ... reached the" with EVAL_ITEM, in another case and punctuation.
CONTAMINATED = (
    "Yesterday THE HARBOUR-MASTER counted forty fishing boats, returning before the storm reached; the "
    "village was quiet."
)
# Shares 12 consecutive words only.
NEAR_MISS = "A harbour master counted forty fishing boats returning before the storm reached the town."


def eval_jsonl(folder: Path, texts: list[str], field: str = "text") -> Path:
    path = folder / "eval.jsonl"
    path.write_text(
        "".join(json.dumps({field: text, "answer": "x"}) + "\n" for text in texts), encoding="utf-8"
    )
    return path


def decontamination(path: Path, **settings: object) -> Decontamination:
    return Decontamination(DecontaminationSettings(eval_files=(str(path),), **settings))


def test_text_sharing_a_13_gram_is_rejected_with_the_file_and_ngram(tmp_path: Path) -> None:
    check = decontamination(eval_jsonl(tmp_path, [EVAL_ITEM]))

    scores, verdict = check.judge({"text": CONTAMINATED})

    assert verdict is not None
    assert check.code(verdict[0]) == "filter.decontamination.eval_overlap"
    assert verdict[1] == (
        "1 overlapping 13-gram(s); first 'the harbour master counted forty fishing boats returning before "
        "the storm reach…' from eval.jsonl line 1"
    )
    assert scores == {"eval_overlap_ngrams": 1}


def test_twelve_shared_words_are_not_an_overlap(tmp_path: Path) -> None:
    scores, verdict = decontamination(eval_jsonl(tmp_path, [EVAL_ITEM])).judge({"text": NEAR_MISS})

    assert (scores, verdict) == ({"eval_overlap_ngrams": 0}, None)


def test_score_counts_distinct_overlapping_ngrams(tmp_path: Path) -> None:
    words = [f"w{index}" for index in range(20)]
    check = decontamination(eval_jsonl(tmp_path, [" ".join(words)]))

    # 15 shared words hold 3 shared 13-grams; the repeat adds no new one.
    text = " ".join(["intro", *words[:15], "gap", *words[:13]])

    assert check.judge({"text": text})[0] == {"eval_overlap_ngrams": 3}


def test_max_overlaps_tolerates_that_many_ngrams(tmp_path: Path) -> None:
    check = decontamination(eval_jsonl(tmp_path, [EVAL_ITEM]), max_overlaps=1)

    assert check.judge({"text": CONTAMINATED})[1] is None


def test_configurable_n(tmp_path: Path) -> None:
    check = decontamination(eval_jsonl(tmp_path, [EVAL_ITEM]), ngram=8)

    scores, verdict = check.judge(
        {"text": "boats returning before the storm reached the northern cliffs today"}
    )

    assert scores == {"eval_overlap_ngrams": 2}
    assert verdict is not None and verdict[1].startswith("2 overlapping 8-gram(s)")


def test_short_eval_item_is_matched_as_a_whole(tmp_path: Path) -> None:
    short = "Which gas do plants take in to make food?"  # 9 words
    check = decontamination(eval_jsonl(tmp_path, [short]))

    scores, verdict = check.judge({"text": "Quiz: which gas do plants take in to make food? Answer below."})

    assert scores == {"eval_overlap_ngrams": 1}
    assert verdict is not None and "9-gram" in verdict[1]
    assert check.judge({"text": "Which gas do plants take in to make"})[1] is None


def test_eval_item_under_min_item_words_is_ignored(tmp_path: Path) -> None:
    check = decontamination(eval_jsonl(tmp_path, ["What is seven times six?"]))

    assert check.judge({"text": "What is seven times six? Forty-two."})[1] is None


def test_plain_text_eval_file_holds_one_item_per_line(tmp_path: Path) -> None:
    path = tmp_path / "eval.txt"
    path.write_text(f"\nunrelated line of text\n{EVAL_ITEM}\n", encoding="utf-8")

    verdict = decontamination(path).judge({"text": CONTAMINATED})[1]

    assert verdict is not None and verdict[1].endswith("from eval.txt line 3")


def test_a_zstandard_json_lines_eval_file_as_the_pile_ships_is_read(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(eval_jsonl(tmp_path, [EVAL_ITEM]).read_bytes()))

    verdict = decontamination(path).judge({"text": CONTAMINATED})[1]

    assert verdict is not None and verdict[1].endswith("from eval.jsonl.zst line 1")


def test_normalisation_casefolds_and_strips_punctuation() -> None:
    assert normalized_words("The HARBOUR-master's  boats, (forty)!") == [
        "the",
        "harbour",
        "master",
        "s",
        "boats",
        "forty",
    ]


def test_missing_eval_file_is_a_spec_error_naming_the_setting(tmp_path: Path) -> None:
    check = decontamination(tmp_path / "absent.jsonl")

    with pytest.raises(SpecError, match=r"decontamination\.eval_files: .*absent\.jsonl does not exist"):
        check.judge({"text": "anything at all"})


def test_jsonl_line_without_the_text_field_is_a_spec_error(tmp_path: Path) -> None:
    check = decontamination(eval_jsonl(tmp_path, [EVAL_ITEM], field="question"))

    with pytest.raises(SpecError, match=r"eval\.jsonl line 1 has no text field text"):
        check.judge({"text": "anything at all"})


def test_eval_ngrams_are_built_once_per_process(tmp_path: Path) -> None:
    settings = DecontaminationSettings(eval_files=(str(eval_jsonl(tmp_path, [EVAL_ITEM])),))

    assert load_eval_ngrams(settings) is load_eval_ngrams(settings)


def test_an_edited_eval_file_is_read_again(tmp_path: Path) -> None:
    path = eval_jsonl(tmp_path, [EVAL_ITEM])
    settings = DecontaminationSettings(eval_files=(str(path),))
    first = load_eval_ngrams(settings)

    eval_jsonl(
        tmp_path, [EVAL_ITEM, "one two three four five six seven eight nine ten eleven twelve thirteen"]
    )

    assert load_eval_ngrams(settings).size == first.size + 1


def test_spec_accepts_the_filter_in_a_text_chain() -> None:
    spec = parse_spec(
        {"name": "d", "filters": {"text": [{"kind": "decontamination", "eval_files": ["e.jsonl"]}]}}
    )

    assert spec.filters.text[0] == DecontaminationSettings(eval_files=("e.jsonl",))


def test_spec_requires_at_least_one_eval_file() -> None:
    with pytest.raises(SpecError, match=r"filters\.text\.0\.eval_files"):
        parse_spec({"name": "d", "filters": {"text": [{"kind": "decontamination", "eval_files": []}]}})


def test_shipped_text_formal_eval_file_resolves_from_the_versions_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from curation_dagster.spec import load_spec

    repo = Path(__file__).resolve().parents[3]
    monkeypatch.setenv("CURATION_VERSIONS", str(repo / "versions"))
    monkeypatch.chdir(tmp_path)
    (settings,) = [
        f
        for f in load_spec(repo / "versions" / "text_formal.yaml").filters.text
        if f.kind == "decontamination"
    ]
    assert isinstance(settings, DecontaminationSettings)

    assert load_eval_ngrams(settings).size > 0
