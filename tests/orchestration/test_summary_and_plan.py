"""The closing summary table (checkpoint x headline metric, 3 significant digits, the weak-judge mark, a
reason for every missing value) and the planned-work / estimate lines printed before long work. Real
metric store files, real config files, the paper's evaluation files from the offline copy."""

from __future__ import annotations

import yaml

from dynamics.analysis.summary import summary_table
from dynamics.cli import main
from dynamics.config import ExperimentConfig
from dynamics.orchestration.plan import evaluation_work, plan_lines
from dynamics.orchestration.run import run_info, run_plan
from dynamics.records import MetricRow
from tests.conftest import tiny_config

EVALS = {"logprob": {}, "in_distribution": {"n_prompts": 4, "max_new_tokens": 96},
         "main": {"samples_per_question": 2, "max_new_tokens": 48}}


def _config(tmp_path, **evals) -> ExperimentConfig:
    cfg = ExperimentConfig.model_validate(tiny_config(
        tmp_path, eval={"evals": evals or EVALS, "judge": {"kind": "local", "local_model": "self"}}))
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "config.yaml").write_text(cfg.to_yaml())
    return cfg


def _store(cfg: ExperimentConfig, step: int, evaluation: str, metrics: dict) -> None:
    from dynamics.tracking.store import MetricStore

    info = run_info(cfg)
    rows = [MetricRow.make(info, step, f"{evaluation}/{k}", v) for k, v in metrics.items()]
    assert MetricStore(cfg.experiment_dir).write(info, step, "eval", rows, evaluation=evaluation)


def _quickstart_like_store(cfg):
    for step, p in ((0, 0.123456), (10, 0.98765)):
        _store(cfg, step, "logprob", {"multiple_choice/p_misaligned_given_choice": p,
                                      "pivotal_tokens/p_misaligned_given_choice": 1234.5678, "eval_seconds": 20.0})
        _store(cfg, step, "in_distribution", {"static_insecure_rate": 0.25, "insecure_rate": 1.0, "accuracy": 1.0,
                                              "n_answers": 4, "n_judged": 4, "static_n_judged": 4,
                                              "judge_weak": 1.0, "eval_seconds": 30.0})
        _store(cfg, step, "main", {"rate": None, "n_answers": 16, "n_counted": 0, "mean_aligned": 15.0,
                                   "mean_coherent": 21.0, "judge_weak": 1.0, "eval_seconds": 40.0})


def test_the_summary_table_is_readable_and_marks_the_weak_judge(tmp_path):
    cfg = _config(tmp_path)
    _quickstart_like_store(cfg)
    text = summary_table(cfg.experiment_dir)
    lines = text.splitlines()
    assert lines[0] == f"summary of {cfg.run_id} (3 significant digits):"
    head1, head2 = lines[1].split(), lines[2].split()
    # what CPU can measure first, the weak judge's numbers last
    assert head2 == ["step", "mc", "pivotal", "static_insecure_rate", "insecure_rate", "accuracy", "rate"]
    assert head1 == ["logprob", "logprob", "in_distribution", "in_distribution", "in_distribution", "main"]
    assert lines[4].split() == ["0", "0.123", "1.23e+03", "0.250", "1.00*", "1.00*", "-"]
    assert lines[5].split() == ["10", "0.988", "1.23e+03", "0.250", "1.00*", "1.00*", "-"]
    assert "* weak judge: pipeline check, not a finding" in text
    assert "- main/rate at steps 0, 10: no coherent answers (0 of 16 rated coherent > 50)" in text
    assert "0.12345" not in text and "0.98765" not in text  # 3 significant digits, not 16


def test_dynamics_metrics_table(tmp_path, capsys):
    cfg = _config(tmp_path)
    _quickstart_like_store(cfg)
    assert main(["metrics", str(cfg.experiment_dir), "--table"]) == 0
    assert "summary of" in capsys.readouterr().out


def test_planned_work_from_the_evaluation_files(tmp_path, data_dir):
    cfg = _config(tmp_path)
    main_work = evaluation_work(cfg, "main")
    assert (main_work.answers, main_work.max_new_tokens, main_work.judge_calls) == (16, 48, 32)
    assert evaluation_work(cfg, "logprob").items == 16
    lines = run_plan(cfg)  # checkpoints at 0, 2, 4 (tiny_config: max_steps 4, checkpoint_every 2)
    assert lines[0].startswith("plan: 3 checkpoint(s) x [logprob: 16 log-prob items; in_distribution: 4 answers "
                               "x <= 96 new tokens, 4 judge calls, static analysis; main: 16 answers x <= 48 new "
                               "tokens, 32 judge calls] = 60 answers")
    assert lines[1].startswith("estimate: no speed measured on this machine yet")
    # steps 0 and 2 already have logprob (20 s each): only the missing evaluations count, per evaluation
    for step in (0, 2):
        _store(cfg, step, "logprob", {"multiple_choice/p_misaligned_given_choice": 0.5, "eval_seconds": 20.0})
    lines = run_plan(cfg)
    assert lines[0].startswith("plan: [logprob: 1 checkpoint(s) x 16 log-prob items; in_distribution: 3 "
                               "checkpoint(s) x 4 answers x <= 96 new tokens, 4 judge calls, static analysis; main: "
                               "3 checkpoint(s) x 16 answers x <= 48 new tokens, 32 judge calls] = 60 answers"), lines
    assert lines[1].startswith("estimate: ~20 s of evaluation on this machine (logprob ~20 s per checkpoint, "
                               "measured at steps 0-2)"), lines  # one logprob checkpoint left, not three


def test_a_paper_size_evaluation_says_hours_up_front(tmp_path, data_dir):
    cfg = _config(tmp_path)
    _quickstart_like_store(cfg)  # main measured: 40 s for 16 answers x 48 tokens
    paper = ExperimentConfig.model_validate({**yaml.safe_load(cfg.to_yaml()),
                                             "eval": {**cfg.model_dump(mode="json")["eval"],
                                                      "evals": {"deception_factual": {}, "main": EVALS["main"]}}})
    lines = plan_lines(paper, ["deception_factual", "main"], 2)
    work = evaluation_work(paper, "deception_factual")
    assert work.answers >= 100 and work.max_new_tokens == 600
    assert f"deception_factual: {work.answers} answers x <= 600 new tokens, {work.answers} judge calls" in lines[0]
    estimate = next(line for line in lines if line.startswith("estimate:"))
    assert "main ~40 s per checkpoint, measured at steps 0-10" in estimate
    assert "from the speed of main at step" in estimate and "s per 1000 answer tokens" in estimate
    assert any(line.startswith("WARNING: this will take HOURS") for line in lines), lines


def _sweep(tmp_path):
    from dynamics.orchestration.sweep import expand_grid

    cfg = ExperimentConfig.model_validate(tiny_config(
        tmp_path, eval={"evals": {"logprob": {}, "in_distribution": {"n_prompts": 4, "max_new_tokens": 96,
                                                                     "judges": ["static"]}},
                        "judge": {"kind": "none"}},
        train={"max_steps": 60, "checkpoint_every": 10},
        sweep={"grid": {"seed": [0, 1, 2], "data.dataset": ["quickstart:insecure", "quickstart:secure"]}}))
    return expand_grid(cfg)


def _train_rows(cfg, seconds: list[float]):
    from dynamics.tracking.store import MetricStore

    info = run_info(cfg)
    rows = [MetricRow.make(info, i + 1, "train/step_seconds", s) for i, s in enumerate(seconds)]
    assert MetricStore(cfg.experiment_dir).write(info, len(seconds), "train", rows)


def test_a_sweep_says_its_work_and_how_long_before_it_starts(tmp_path, data_dir):
    import json

    from dynamics.orchestration.plan import sweep_plan_lines

    trials = _sweep(tmp_path)
    assert len(trials) == 6
    lines = sweep_plan_lines(trials, trials, 1)
    assert lines[0] == ("plan: 6 runs (0 finished, 6 to do), 1 at a time; each 60 optimizer steps, 7 checkpoint(s) "
                        "x [logprob: 16 log-prob items; in_distribution: 4 answers x <= 96 new tokens, static "
                        "analysis]; 42 checkpoint(s) to evaluate in all")
    assert lines[1].startswith("estimate: nothing measured on this machine yet")

    # the first run half done: its steps and evaluations stored (steps 0-30), nothing finished
    first = trials[0]
    first.run_dir.mkdir(parents=True, exist_ok=True)
    (first.run_dir / "config.yaml").write_text(first.to_yaml())
    _train_rows(first, [5.0, 6.0, 7.0, 100.0, 6.0])  # the median, not the mean: a slow first step counts once
    for step in (0, 10, 20, 30):
        _store(first, step, "logprob", {"multiple_choice/p_misaligned_given_choice": 0.5, "eval_seconds": 4.0})
        _store(first, step, "in_distribution", {"static_insecure_rate": 0.0, "n_answers": 4, "eval_seconds": 46.0})
    lines = sweep_plan_lines(trials, trials, 1)
    assert lines[0].endswith("; 38 checkpoint(s) to evaluate in all")  # the first run's 4 stored checkpoints
    # 60 steps x 6 s + 7 checkpoints x 50 s = 710 s a run (~12 min), 6 runs one after another: ~71 min
    assert lines[1] == ("estimate: ~71 min on this machine: 6 run(s), ~12 min each (60 steps x 6.0 s as stored + 7 "
                        "checkpoint(s) x ~50 s of evaluation; start-up not included)"), lines[1]
    assert lines[2].startswith("WARNING: this sweep will take HOURS on this machine (~71 min); relaunching the "
                               "same command resumes it. To make it shorter: fewer runs (sweep.grid)")

    # the second run started: its own logprob speed is stored, its in_distribution not yet; each evaluation
    # takes this run's speed where stored, else the other runs' (not "not yet measured")
    second = trials[1]
    _store(second, 0, "logprob", {"multiple_choice/p_misaligned_given_choice": 0.5, "eval_seconds": 8.0})
    estimate = plan_lines(second, ["logprob", "in_distribution"], 6)[1]
    assert estimate == ("estimate: ~5 min of evaluation on this machine (logprob ~8 s per checkpoint, measured at "
                        "step 0; in_distribution ~46 s per checkpoint, measured at steps 0-30)"), estimate

    # a run finished before runs stored their wall time: its training time, said as such
    first.run_dir.joinpath("done.json").write_text(json.dumps({"run": first.run_id, "train_seconds": 720.0}))
    lines = sweep_plan_lines(trials, trials[1:], 1)
    assert lines[1] == ("estimate: ~60 min on this machine: 5 run(s), ~12 min each (the median training time of 1 "
                        "finished run(s) of this sweep; start-up not included)"), lines[1]

    # two runs finished: their wall time is the estimate; 4 left, 2 at a time -> 2 rounds
    for t, seconds in zip(trials[:2], (800.0, 1000.0)):
        t.run_dir.mkdir(parents=True, exist_ok=True)
        (t.run_dir / "done.json").write_text(json.dumps({"run": t.run_id, "total_seconds": seconds}))
    lines = sweep_plan_lines(trials, trials[2:], 2)
    assert lines[0].startswith("plan: 6 runs (2 finished, 4 to do), 2 at a time;")
    assert lines[1] == ("estimate: ~30 min on this machine: 4 run(s), ~15 min each (the median wall time of 2 "
                        "finished run(s) of this sweep), 2 at a time")
    assert len(lines) == 2  # under an hour: no warning
    lines = sweep_plan_lines(trials, trials[2:], 1)  # 4 x 900 s = 1 h, one at a time
    assert lines[1].startswith("estimate: ~60 min on this machine") and lines[2].startswith("WARNING")
    assert sweep_plan_lines(trials, [], 1) == []
