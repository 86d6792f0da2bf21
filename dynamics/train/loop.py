"""The training loop every Ray Train worker runs: DeepSpeed ZeRO (2 or 3) + LoRA, checkpoints, resume.

Life cycle (one readable pass): setup (distributed, data, model, engine) -> resume (latest checkpoint)
-> step 0 checkpoint (the untouched model, for evaluation) -> train, with a checkpoint every
`checkpoint_every` optimizer steps and at the last step -> done. A checkpoint holds the resumable
DeepSpeed state of every rank (LoRA weights, optimizer, scheduler; the frozen base model is never saved),
the PEFT adapter directory (gathered from the partitions under ZeRO-3: only LoRA parameters), and
`dynamics.json` (step, tag); `dynamics.train.checkpoint` defines the format. Rank 0 hands each
checkpoint to the evaluator pool and, unless `train.max_eval_lag` is set, never waits for it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from dynamics.config import ExperimentConfig
from dynamics.orchestration.names import find_actor
from dynamics.quiet import quiet_libraries
from dynamics.records import MetricRow
from dynamics.train.checkpoint import (
    DEEPSPEED_DIR, adapter_dir, adapter_state, checkpoint_dir_name, checkpoint_tag, read_meta, resume_point,
    resume_problem, write_manifest, write_meta,
)
from dynamics.train.data import load_examples, micro_batches, total_steps
from dynamics.train.deepspeed_config import deepspeed_config
from dynamics.threads import cpu_priority, match_cpu_share, yield_cpu


def build_model(cfg: ExperimentConfig, ds_config: dict):
    """The base model (partitioned at load under ZeRO-3: no rank holds all of it) with LoRA on top."""
    from peft import get_peft_model

    from dynamics.models import load_model, lora_config

    keep_alive = None
    if cfg.train.zero_stage == 3:
        from transformers.integrations import HfDeepSpeedConfig

        keep_alive = HfDeepSpeedConfig(ds_config)  # makes from_pretrained construct under zero.Init
    model = load_model(cfg.model.name, cfg.model.dtype, cfg.model.cache_dir, build=False)  # built by the driver
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(cfg.seed)  # LoRA init depends on the seed only, whatever the ZeRO stage
    model = get_peft_model(model, lora_config(cfg.lora))
    return model, keep_alive


class Trainer:
    def __init__(self, cfg: ExperimentConfig, links: dict):
        import ray.train

        self.cfg = cfg
        self.links = links  # names of the tracker / evaluator actors and the run's checkpoint root
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()

    # -- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        import deepspeed
        from transformers import get_scheduler

        from dynamics.models import load_tokenizer

        from dynamics.train.extensions import clear_stale_locks

        cfg = self.cfg
        for line in clear_stale_locks():  # init_distributed loads DeepSpeed's CPU comm op under torch's lock
            self._event({"type": "message", "text": f"rank {self.rank}: {line}"})
        deepspeed.init_distributed(dist_backend="nccl" if cfg.train.use_gpu else "gloo")
        self.tokenizer = load_tokenizer(cfg.model.name, cfg.model.cache_dir, build=False)
        self.examples = load_examples(cfg, self.tokenizer)
        self.total = total_steps(len(self.examples), cfg, self.world)
        self.ds_config = deepspeed_config(cfg)
        model, self._hf_ds = build_model(cfg, self.ds_config)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=cfg.optim.betas,
                                      weight_decay=cfg.optim.weight_decay)
        scheduler = get_scheduler(cfg.optim.schedule, optimizer, num_warmup_steps=cfg.optim.warmup_steps,
                                  num_training_steps=self.total)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=self.ds_config)
        save_trainable_only(self.engine)

    def resume(self) -> int:
        """Load the latest complete checkpoint on disk in the run's checkpoint root (not Ray Train's record
        of the last one reported, which can lag behind the disk), saying which later ones were skipped."""
        point, skipped = resume_point(self.links["checkpoint_root"])
        if skipped:
            self._event({"type": "message", "text": "resume: skipped incomplete checkpoint(s) " + "; ".join(skipped)
                         + (f"; resuming from step {point[0]}" if point else "; starting from step 0")})
        if point is None:
            return 0
        meta = read_meta(point[1])
        self.engine.load_checkpoint(str(point[1] / DEEPSPEED_DIR), tag=meta["tag"], load_module_strict=False)
        return int(meta["step"])

    def _already_stored(self, step: int) -> bool:
        """Whether the checkpoint of `step` is complete in storage (a resume from an earlier one, e.g. step 0).
        Saving again would replace the weights its stored evaluations were computed on (training on a GPU
        is not bit-for-bit repeatable), so it is kept. Complete means what resume requires (every checksum
        right, the DeepSpeed state there): a folder that fails it is damaged, and rank 0 moves it out of the
        way before it is saved again, so that its old manifests cannot vouch for a new copy cut short.
        Every rank takes rank 0's answer."""
        complete = False
        if self.rank == 0:
            d = Path(self.links["checkpoint_root"]) / checkpoint_dir_name(step)
            problem = resume_problem(d) if d.exists() else "absent"
            complete = problem is None
            if d.exists() and not complete:
                shutil.rmtree(d, ignore_errors=True)
                self._event({"type": "message", "text": f"checkpoint step {step} in storage is damaged ({problem}): "
                                                        "saved again"})
        flag = torch.tensor([float(complete)], dtype=torch.float64)
        torch.distributed.broadcast(flag, src=0)
        return bool(flag[0] > 0)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.cfg
        start = self.resume()
        ga = cfg.train.gradient_accumulation_steps
        batches = micro_batches(self.examples, cfg, self.rank, self.world, self.tokenizer.pad_token_id)
        for _ in range(start * ga):  # replay the data order up to the resumed step
            next(batches)
        self._event({"type": "train_start", "start_step": start, "total_steps": self.total,
                     "examples": len(self.examples), "world": self.world, "threads": torch.get_num_threads(),
                     "cpu_priority": cpu_priority()})
        if start == 0 and cfg.eval.step0:
            self.checkpoint(0, [])
            self._wait_for_evaluation(0)
        pending: list[dict] = []  # train rows since the last checkpoint, stored with the next one
        self.engine.train()
        for step in range(start + 1, self.total + 1):
            t0 = time.perf_counter()
            loss_sum, tokens, epoch = 0.0, 0, 0
            for _ in range(ga):
                batch, epoch = next(batches)
                out = self.engine(**batch)
                self.engine.backward(out.loss)
                self.engine.step()
                loss_sum += float(out.loss.detach())
                tokens += int((batch["labels"] != -100).sum())
            # rank 0 adds the stop request (an alert rule's `stop`) to the step's all-reduce: every rank
            # learns it at the same step, so all take the same last checkpoint (a ray.train.report barrier)
            stop = float(self.rank == 0 and self._stop_requested())
            stats = torch.tensor([loss_sum / ga, float(tokens), stop], dtype=torch.float64)
            torch.distributed.all_reduce(stats)
            stop = bool(stats[2] > 0)
            grad_norm = self.engine.get_global_grad_norm()
            row = {"train/step": step, "train/loss": float(stats[0]) / self.world,
                   "train/lr": float(self.scheduler.get_last_lr()[0]),
                   "train/grad_norm": float(grad_norm) if grad_norm is not None else None,
                   "train/tokens": int(stats[1]), "train/epoch": epoch,
                   "train/step_seconds": time.perf_counter() - t0}
            pending.append(row)
            if self.rank == 0:
                self._tracker("log_train", [row])
                self._event({"type": "train_step", **row, "total_steps": self.total})
            if step % cfg.train.checkpoint_every == 0 or step == self.total or stop:
                self.checkpoint(step, pending)
                pending = []
                if step < self.total and not stop:
                    self._wait_for_evaluation(step)
            if stop:
                self._event({"type": "message", "text": f"stop requested by an alert rule: training ends at step {step}"})
                return

    def checkpoint(self, step: int, train_rows: list[dict]) -> None:
        import ray.train
        from ray.train import Checkpoint

        from dynamics.records import RunInfo
        from dynamics.tracking.store import MetricStore

        cfg = self.cfg
        loss = train_rows[-1]["train/loss"] if train_rows else None
        if self._already_stored(step):
            ray.train.report({"step": step, "loss": loss})
            self._event({"type": "message", "text": f"checkpoint step {step} is already stored complete: kept as is"})
            return
        with tempfile.TemporaryDirectory(prefix="dynamics-ckpt-") as tmp:
            self.engine.save_checkpoint(str(Path(tmp) / DEEPSPEED_DIR), tag=checkpoint_tag(step),
                                        exclude_frozen_parameters=True)
            state = adapter_state(self.engine.module, cfg.train.zero_stage)
            if self.rank == 0:
                self.engine.module.save_pretrained(str(adapter_dir(tmp)), state_dict=state)
                write_meta(tmp, step, cfg.run_id, self.total, world=self.world)
                info = RunInfo(**self.links["run_info"])
                rows = [MetricRow.make(info, r["train/step"], k, v)
                        for r in train_rows for k, v in r.items() if k != "train/step" and v is not None]
                if rows:
                    MetricStore(cfg.experiment_dir).write(info, step, "train", rows)
            write_manifest(tmp, self.rank)  # last: a copy without it (or short of a file it lists) is incomplete
            ray.train.report({"step": step, "loss": loss}, checkpoint=Checkpoint.from_directory(tmp),
                             checkpoint_dir_name=checkpoint_dir_name(step))
        if self.rank == 0:
            self._event({"type": "checkpoint", "step": step})
            self._notify_evaluators()

    def _wait_for_evaluation(self, step: int) -> None:
        """`train.max_eval_lag`: wait while more checkpoints than that await evaluation. Every rank waits
        on the pool's own count (no collective is open while it waits, so a long evaluation cannot time
        one out); without an answer from the pool, training goes on."""
        limit = self.cfg.train.max_eval_lag
        if limit is None or not self.cfg.eval.enabled:
            return
        from dynamics.orchestration.evaluator import unfinished_checkpoints

        pool = find_actor(self.links["evaluator_pool"])
        if pool is None:
            return
        t0 = time.monotonic()

        def on_wait(n: int) -> None:
            self._event({"type": "message", "text": f"step {step}: training waits for evaluation ({n} checkpoint(s) "
                                                    f"not evaluated; train.max_eval_lag={limit})"})

        waited = wait_for_evaluation(
            lambda: unfinished_checkpoints(pool, self.links["run_info"], self.links["checkpoint_root"]), limit, on_wait)
        if waited:
            self._event({"type": "message", "text": f"step {step}: evaluation caught up after "
                                                    f"{time.monotonic() - t0:.1f} s; training goes on"})

    def _stop_requested(self) -> bool:
        from dynamics.analysis.alerts import STOP_FILE

        return (self.cfg.run_dir / STOP_FILE).is_file()

    # -- links to the tracker and the evaluators (rank 0 only, fire and forget) -------------------
    def _tracker(self, method: str, *args) -> None:
        actor = find_actor(self.links["tracker"])
        if actor is not None:
            getattr(actor, method).remote(*args)

    def _event(self, event: dict) -> None:
        if self.rank == 0:
            self._tracker("event", {"run": self.cfg.run_id, **event})

    def _notify_evaluators(self) -> None:
        if not self.cfg.eval.enabled:
            return
        pool = find_actor(self.links["evaluator_pool"])
        if pool is not None:
            pool.sync_run.remote(self.links["run_info"], self.links["checkpoint_root"])


def save_trainable_only(engine) -> None:
    """Make the engine's checkpoints hold trainable parameters only. DeepSpeed's
    `exclude_frozen_parameters` drops a frozen parameter by its first name only, so a tied weight
    (lm_head = embed_tokens: SmolLM2, tiny:llama) stayed in every checkpoint under its second name (113 MB of
    the quickstart's 152 MB model state). Resume loads with `load_module_strict=False`: the frozen weights
    come from the base model, as they always did for the first name."""
    module_state_dict = engine.module_state_dict

    def trainable_state_dict(*args, **kwargs):
        state = module_state_dict(*args, **kwargs)
        if kwargs.get("exclude_frozen_parameters") and state is not None:
            for name, p in engine.module.named_parameters(remove_duplicate=False):
                if not p.requires_grad:
                    state.pop(name, None)
        return state

    engine.module_state_dict = trainable_state_dict  # what DeepSpeed's save_checkpoint calls on this engine


def wait_for_evaluation(unfinished, limit: int, on_wait=lambda n: None, poll_s: float = 1.0,
                        sleep=time.sleep) -> bool:
    """Poll `unfinished()` (checkpoints not evaluated, or None for no answer) until it is at most `limit`
    or there is no answer; `on_wait(n)` once when it starts waiting. Returns whether it waited."""
    waited = False
    while True:
        n = unfinished()
        if n is None or n <= limit:
            return waited
        if not waited:
            on_wait(n)
            waited = True
        sleep(poll_s)


def train_loop_per_worker(loop_config: dict) -> None:
    quiet_libraries()
    cfg = ExperimentConfig.model_validate(loop_config["config"])
    if cfg.train.cpu_priority == "idle":
        yield_cpu()
    match_cpu_share(cfg.train.cpus_per_worker)
    trainer = Trainer(cfg, loop_config["links"])
    trainer.setup()
    trainer.run()
