"""Tests of curation_dagster/sampling.py: seeded scores by id."""

from curation_dagster.sampling import sample_score, sample_scores


def test_sample_score_is_fixed_by_seed_and_id_and_in_unit_interval() -> None:
    scores = [sample_score(3, f"id{index}") for index in range(200)]

    assert scores == [sample_score(3, f"id{index}") for index in range(200)]
    assert all(0 <= score < 1 for score in scores)
    assert sample_score(3, "id0") != sample_score(4, "id0")


def test_scores_of_many_ids_equal_one_by_one() -> None:
    ids = [f"id{number}" for number in range(50)]
    assert sample_scores(7, ids).tolist() == [sample_score(7, item) for item in ids]
