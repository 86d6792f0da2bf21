"""The project's Ray actors are found by the names `dynamics.orchestration.names` gives them (looked up by
name in the end-to-end tests: the tracker gets every event, the pool every checkpoint)."""

from dynamics.orchestration.names import pool_name, tracker_name


def test_names_are_distinct_per_run_and_experiment():
    assert tracker_name("exp-insecure-s0") != tracker_name("exp-insecure-s1")
    assert pool_name("exp") != pool_name("exp2")
    assert tracker_name("x") != pool_name("x")

