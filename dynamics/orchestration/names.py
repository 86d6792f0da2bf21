"""The names of the project's Ray actors, all in one namespace: one tracker per run, one evaluator pool per
experiment. Drivers create them under these names; training workers and evaluators find them by name."""

from __future__ import annotations

NAMESPACE = "dynamics"


def tracker_name(run_id: str) -> str:
    return f"dynamics-tracker-{run_id}"


def pool_name(experiment: str) -> str:
    return f"dynamics-evalpool-{experiment}"


def find_actor(name: str):
    """The named actor of this namespace, or None when it is not (or no longer) alive."""
    import ray

    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None
