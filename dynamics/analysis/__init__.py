"""Analysis over the metric store: when groups of runs separate (compare.py, stats.py), when each run
changes regime (onset.py), the adapter's whole-run trajectory (trajectory.py), lag and cost (costs.py),
alert rules (alerts.py, config.py). `dynamics compare`, `dynamics report` and the notebook all call these."""
