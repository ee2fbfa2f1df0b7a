"""The compute plan of a run: tokens, FLOPs, device-hours and wall time per stage, before anything runs.

`alma plan` answers "what does R rounds of K prompts x N responses cost on this cluster?" from counts and
rates alone, so that a run can be sized (or the paper's setting checked) without a cluster. The arithmetic
is the usual one for dense transformers: a forward pass costs 2 FLOPs per parameter per token, a training
step 6 (forward and backward), attention's share ignored. Generation is priced at a decode rate, judging,
embedding and the prompts' prefill at a prefill rate, training at a training rate, each per device for a
model of a given size and scaled inversely with the parameter count (the FLOPs per token scale with it).
Rates come from a GPU's datasheet and a utilisation assumption, or from what this project measured on
its 2-core CPU machine, or from a benchmark's JSON output. Every assumption is a named field with its
default and its source here; docs/plan.md lists them.

Pure logic: the command (commands/plan.py) reads files and configs and prints; nothing here imports more
than the standard library.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from alma.core.errors import ConfigError

FORWARD_FLOPS_PER_PARAM = 2.0  # per token: one multiply-add per weight
TRAIN_FLOPS_PER_PARAM = 6.0  # per token: the forward pass and a backward pass of twice its cost
KINDS = ("decode", "prefill", "training", "clustering", "start-up")

# Llama-3-8B's published config.json (meta-llama/Meta-Llama-3-8B): the paper's base model, counted by
# `llama_params` like any other folder's config.
LLAMA3_8B_CONFIG: dict[str, Any] = {
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False,
}


# ---- parameters from a config.json -----------------------------------------------------------------

def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's part of a config (multimodal configs nest it under text_config)."""
    nested = config.get("text_config")
    return nested if "hidden_size" not in config and isinstance(nested, Mapping) else config


def _config_int(config: Mapping[str, Any], key: str, where: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        problem = "lacks" if value is None else f"has a bad {value!r} for"
        raise ConfigError(f"{where} {problem} '{key}' (alma plan counts the parameters of a Llama-style config; "
                          "or give --params)")
    return value


def llama_params(config: Mapping[str, Any], where: str = "config.json") -> int:
    """Parameters of a Llama-style decoder from its config.json, without loading a weight.

    Exact for LlamaForCausalLM: embeddings, per layer the q/k/v/o projections (grouped-query k/v), the
    gated MLP's three matrices and two RMSNorms, a final norm, and an output layer unless it is tied to the
    embeddings. Other decoders with these fields are counted as if Llama-shaped (their extra norms are
    a few thousand parameters per layer).
    """
    c = _text_config(config)
    hidden, inter = _config_int(c, "hidden_size", where), _config_int(c, "intermediate_size", where)
    layers, vocab = _config_int(c, "num_hidden_layers", where), _config_int(c, "vocab_size", where)
    heads = _config_int(c, "num_attention_heads", where)
    kv_heads = _config_int(c, "num_key_value_heads", where) if "num_key_value_heads" in c else heads
    head_dim = _config_int(c, "head_dim", where) if c.get("head_dim") is not None else hidden // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    attention = hidden * q + 2 * hidden * kv + q * hidden
    if c.get("attention_bias"):
        attention += q + 2 * kv + hidden
    mlp = 3 * hidden * inter + (2 * inter + hidden if c.get("mlp_bias") else 0)
    embeddings = vocab * hidden * (1 if c.get("tie_word_embeddings", False) else 2)
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden


def hidden_size(config: Mapping[str, Any], where: str = "config.json") -> int:
    """The width of the hidden states the pool's prompts are embedded with."""
    return _config_int(_text_config(config), "hidden_size", where)


LLAMA3_8B_PARAMS = llama_params(LLAMA3_8B_CONFIG)  # 8,030,261,248
# SmolLM2-135M (builtin:smollm2-135m): hidden 576, 30 layers, 9 heads / 3 KV heads, vocab 49,152, tied.
SMOLLM2_135M_PARAMS = llama_params({
    "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
    "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True})


# ---- the workload ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    """What a run does, in counts and token lengths. Lengths are means per item, in the base's tokens;
    a field left None is derived (see the properties)."""

    params: float  # parameters of the base, and of every policy checkpoint (same shape)
    responses_per_prompt: int  # N
    prompts_per_round: int  # K
    rounds: int  # R
    seed_sft_rows: int  # SFT seed rows each of sft-1, sft-2 and every round trains on
    judge_rows: int  # judge seed triplets the judge trains on (its training split)
    distill_responses: int  # M: round-1 responses the judge labels and then trains on (0: none)
    judge_params: float | None = None  # None: params (the judge is the base fine-tuned)
    sft_models: int = 2  # initial SFT models (the paper's two seeds)
    pool_prompts: int | None = None  # prompts kept in the pool; None: pool_attempts x pool_keep_rate
    pool_attempts: int | None = None  # few-shot requests; None: pool_prompts / pool_keep_rate
    pool_keep_rate: float = 0.62  # kept / requested, measured: 100 of 160 (cpu-align), 31 of 48 (smollm2-cpu)
    few_shot: int = 3  # seed prompts shown per few-shot request (pool.few_shot; paper 3-5)
    clusters: int = 1000  # k of the pool's k-means (pool.clusters; paper 1M)
    kmeans_epochs: int = 3  # passes of mini-batch k-means (pool.kmeans_epochs), plus one assignment pass
    embed_dim: int = 4096  # width of the embedded hidden states (the base's hidden_size)
    prompt_tokens: int = 48  # a pool prompt (presets: the pool's max_new_tokens, an upper bound)
    response_tokens: int = 96  # a response (presets: round.sampling.max_new_tokens, an upper bound)
    chat_tokens: int = 32  # chat template around one exchange: SmolLM2's ChatML with its default system line
    few_shot_header_tokens: int = 21  # the few-shot request's header line (core/prompts.py), SmolLM2 tokenizer
    few_shot_item_tokens: int = 4  # "Request: " and the newline around each shown prompt
    judge_template_tokens: int = 148  # the judge request's fixed text and "Rating: [[", without chat_tokens
    judge_answer_tokens: int = 4  # the trained answer after the prefix: "7]]" and the end-of-turn token
    train_length: int = 512  # training sequences are cut here (train.max_length)
    judge_length: int = 512  # judge training sequences are cut here (judge_train.max_length)
    epochs: float = 2.0  # passes over a policy training set (train.epochs)
    judge_epochs: float = 2.0  # passes over a judge training set (judge_train.epochs)
    train_rows_cap: int | None = None  # rows a policy training sees at most (train.max_steps x batch)
    judge_rows_cap: int | None = None  # rows a judge training sees at most (judge_train.max_steps x batch)
    # cluster.warm_training: every training after the first is a job of one kept worker group, so it pays
    # Rates.warm_training_startup_s instead of training_startup_s
    warm_training: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "warm_training":
                check_count(f.name, getattr(self, f.name))
        if self.pool_keep_rate > 1:
            raise ConfigError(f"pool_keep_rate is a share, at most 1, got {self.pool_keep_rate:g}")
        if self.pool_prompts is None and self.pool_attempts is None:
            raise ConfigError("give the pool's size (pool_prompts) or its few-shot requests (pool_attempts)")
        if self.rounds * self.prompts_per_round > self.pool_size:
            raise ConfigError(f"R x K = {self.rounds * self.prompts_per_round:,} draws need that many pool "
                              f"prompts (no prompt is drawn twice); the pool keeps {self.pool_size:,} (raise the "
                              "pool, or pool_keep_rate)")

    @property
    def pool_size(self) -> int:
        """Prompts kept in the pool: embedded, clustered, drawn from."""
        return self.pool_prompts or max(1, round(self.pool_attempts * self.pool_keep_rate))

    @property
    def attempts(self) -> int:
        """Few-shot requests sent to the base to fill the pool."""
        return self.pool_attempts or math.ceil(self.pool_prompts / self.pool_keep_rate)

    @property
    def judge_size(self) -> float:
        return self.judge_params or self.params

    @property
    def row_tokens(self) -> int:
        """A policy training row, seed or best-of-N alike: one exchange, cut at train_length."""
        return min(self.chat_tokens + self.prompt_tokens + self.response_tokens, self.train_length)

    @property
    def judgment_tokens(self) -> int:
        """One judge pass (prefill only): the template with the prompt and the response in it."""
        return self.chat_tokens + self.judge_template_tokens + self.prompt_tokens + self.response_tokens

    @property
    def judge_row_tokens(self) -> int:
        return min(self.judgment_tokens + self.judge_answer_tokens, self.judge_length)

    @property
    def request_tokens(self) -> int:
        """One few-shot request of the pool: the header and `few_shot` seed prompts."""
        return self.few_shot_header_tokens + self.few_shot * (self.few_shot_item_tokens + self.prompt_tokens)


_MAY_BE_ZERO = {"distill_responses", "chat_tokens", "few_shot_header_tokens", "few_shot_item_tokens",
                "judge_template_tokens", "judge_answer_tokens"}
_LABELS = {"responses_per_prompt": "N (responses_per_prompt)", "prompts_per_round": "K (prompts_per_round)",
           "rounds": "R (rounds)", "distill_responses": "M (distill_responses)"}


def _label(name: str) -> str:
    return _LABELS.get(name, name)


def check_count(name: str, value: object) -> None:
    """One Workload number's rule (finite; > 0, or >= 0 where zero means "none"), on its own: `alma plan`
    checks its flags with it before it sizes a model, which may mean building one."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    zero_ok = name in _MAY_BE_ZERO
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{_label(name)} must be {'>= 0' if zero_ok else '> 0'}, got {value:g}")


def _passes(rows: float, epochs: float, cap: int | None) -> float:
    """How often a training set is seen: its epochs, or max_steps x batch rows when a cap is set."""
    return cap / rows if cap else epochs


# ---- rates -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rates:
    """Per device (a GPU, or a CPU node), for a model of `params` parameters: useful tokens per second
    (padding not counted), clustering FLOP/s, and the fixed wall time a stage pays before it computes."""

    params: float
    decode_tokens_per_s: float  # tokens generated (decoding)
    prefill_tokens_per_s: float  # tokens read in one forward pass: judging, embedding, prompts
    train_tokens_per_s: float  # tokens trained on (forward and backward)
    kmeans_flops_per_s: float  # distance computations of the k-means (independent of the model)
    training_startup_s: float  # per training: workers, model load (Ray Train)
    warm_training_startup_s: float  # per training after the first on a warm worker group: model load, set-up
    stream_startup_s: float  # per streamed inference stage: callers, engines
    source: str = ""

    def at(self, params: float) -> "Rates":
        """The same device for a model of another size: token rates scale with 1 / parameters."""
        ratio = self.params / params
        return dataclasses.replace(self, params=params, decode_tokens_per_s=self.decode_tokens_per_s * ratio,
                                   prefill_tokens_per_s=self.prefill_tokens_per_s * ratio,
                                   train_tokens_per_s=self.train_tokens_per_s * ratio)


@dataclass(frozen=True)
class GpuSpec:
    """A GPU's datasheet numbers (SXM parts, dense bf16) and how much of them a run gets."""

    name: str
    peak_flops: float  # dense bf16 tensor FLOP/s
    hbm_bytes_per_s: float  # memory bandwidth
    train_mfu: float = 0.40  # model FLOP utilisation of training (a usual figure for 8B-class data parallel)
    prefill_mfu: float = 0.40  # of judging, embedding and prompt prefill (also caps decoding)
    kmeans_mfu: float = 0.40  # of the k-means distance GEMMs, at the bf16 peak (fp32 would be ~15x slower)
    decode_batch: int = 64  # sequences per decode step; each step reads the weights once for all of them
    bandwidth_efficiency: float = 0.60  # share of peak bandwidth a decode step gets
    bytes_per_param: float = 2.0  # bf16 weights

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "name" and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"GPU {f.name} must be > 0, got {value!r}")
        for share in ("train_mfu", "prefill_mfu", "kmeans_mfu", "bandwidth_efficiency"):
            if getattr(self, share) > 1:
                raise ConfigError(f"GPU {share} is a share, at most 1, got {getattr(self, share):g}")


GPUS = {
    "h100": GpuSpec("H100", peak_flops=989e12, hbm_bytes_per_s=3.35e12),  # H100 SXM5: 989 TFLOP/s, 3.35 TB/s
    "h200": GpuSpec("H200", peak_flops=989e12, hbm_bytes_per_s=4.8e12),  # same compute, 4.8 TB/s HBM3e
}
# Not measured here: a Ray Train worker group loading an 8B model, and a vLLM engine start with CUDA graphs.
GPU_TRAINING_STARTUP_S = 120.0
# Not measured either: a warm worker group's next job still loads its model (16 GB of bf16 weights for 8B).
GPU_WARM_TRAINING_STARTUP_S = 30.0
GPU_STREAM_STARTUP_S = 120.0


def gpu_rates(spec: GpuSpec, params: float) -> Rates:
    """Training and prefill are compute-bound (peak x MFU over the FLOPs per token); decoding is
    bandwidth-bound: each step reads every weight once and yields one token per sequence of its batch,
    capped by the compute bound. KV-cache reads are left out, which flatters long responses."""
    bandwidth_bound = spec.decode_batch * spec.hbm_bytes_per_s * spec.bandwidth_efficiency / (
        spec.bytes_per_param * params)
    prefill = spec.peak_flops * spec.prefill_mfu / (FORWARD_FLOPS_PER_PARAM * params)
    return Rates(params=params, decode_tokens_per_s=min(bandwidth_bound, prefill), prefill_tokens_per_s=prefill,
                 train_tokens_per_s=spec.peak_flops * spec.train_mfu / (TRAIN_FLOPS_PER_PARAM * params),
                 kmeans_flops_per_s=spec.peak_flops * spec.kmeans_mfu, training_startup_s=GPU_TRAINING_STARTUP_S,
                 warm_training_startup_s=GPU_WARM_TRAINING_STARTUP_S, stream_startup_s=GPU_STREAM_STARTUP_S,
                 source=f"{spec.name} datasheet: {spec.peak_flops / 1e12:.0f} TFLOP/s bf16 at MFU {spec.train_mfu:g} "
                        f"(training) / {spec.prefill_mfu:g} (prefill); decode {spec.decode_batch} sequences a step at "
                        f"{spec.bandwidth_efficiency:g} of {spec.hbm_bytes_per_s / 1e12:g} TB/s")


# Judge prompts of the benchmarks (the bundled judge pairs in the judge template, SmolLM2 tokenizer, with
# its chat template and "Rating: [["): their mean length turns judgments/s into prefill tokens/s.
BENCHMARK_JUDGMENT_TOKENS = 224.5
CPU_REFERENCE_CORES = 2
# This project's 2-core CPU machine (docs/results.md, benchmarks/README.md), SmolLM2-135M, float32:
CPU_REFERENCE = Rates(
    params=SMOLLM2_135M_PARAMS,
    # pipeline_overhead.py --model builtin:smollm2-135m: 40.7 tok/s through Ray Data and the generator.
    decode_tokens_per_s=40.7,
    # judge_throughput.py: 1.18 judgments/s in-process (`expected`), x 224.5 tokens a judgment.
    prefill_tokens_per_s=1.18 * BENCHMARK_JUDGMENT_TOKENS,
    # smollm2-cpu run: sft-1 trained on the 40 bundled rows (5,663 tokens, cut at 384) in 110 s of TRL.
    train_tokens_per_s=51.5,
    # pool_scaling.py: 4,300 rows/s at k = 1000, dim 256, 3 epochs and an assignment pass, one thread.
    kmeans_flops_per_s=4300 * 4 * 2 * 1000 * 256,
    training_startup_s=30.0,  # train_overhead.py: 27-33 s of Ray Train start-up per training
    warm_training_startup_s=0.6,  # train_overhead.py: a warm worker group's second training, outside its steps
    stream_startup_s=4.0,  # pipeline benchmarks: Ray Data starting its caller actor, 4-5 s per stream
    source="measured on a 2-core CPU machine with SmolLM2-135M (docs/results.md), scaled linearly with cores")


def cpu_rates(cores: int, reference: Rates = CPU_REFERENCE) -> Rates:
    """One CPU node of `cores` cores: the 2-core measurements scaled linearly (start-ups are not)."""
    scale = cores / CPU_REFERENCE_CORES
    return dataclasses.replace(reference, decode_tokens_per_s=reference.decode_tokens_per_s * scale,
                               prefill_tokens_per_s=reference.prefill_tokens_per_s * scale,
                               train_tokens_per_s=reference.train_tokens_per_s * scale,
                               kmeans_flops_per_s=reference.kmeans_flops_per_s * scale)


@dataclass(frozen=True)
class Cluster:
    """Where the run goes: `devices` GPUs, or CPU nodes of `cores_per_node` cores; rates per device."""

    kind: Literal["gpu", "cpu"]
    devices: int
    rates: Rates
    cores_per_node: int = CPU_REFERENCE_CORES
    name: str = ""  # the GPU model

    def __post_init__(self) -> None:
        if self.devices < 1 or self.cores_per_node < 1:
            raise ConfigError(f"a cluster needs at least one device and one core, got {self.devices} "
                              f"device(s) of {self.cores_per_node} core(s)")
        for key in ("decode_tokens_per_s", "prefill_tokens_per_s", "train_tokens_per_s", "kmeans_flops_per_s"):
            if not getattr(self.rates, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self.rates, key)!r}")
        for key in ("training_startup_s", "warm_training_startup_s", "stream_startup_s"):
            if not getattr(self.rates, key) >= 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self.rates, key)!r}")

    @property
    def unit(self) -> str:
        return "GPU-hours" if self.kind == "gpu" else "CPU-hours"

    @property
    def hours_per_device_hour(self) -> int:
        """GPU-hours per GPU-hour, or CPU (core) hours per node-hour."""
        return 1 if self.kind == "gpu" else self.cores_per_node

    def describe(self) -> str:
        if self.kind == "gpu":
            return f"{self.devices:,} x {self.name or 'GPU'}"
        return f"{self.devices:,} CPU node{'s' if self.devices > 1 else ''} x {self.cores_per_node} cores"


# ---- the estimate ----------------------------------------------------------------------------------

@dataclass
class Stage:
    """One stage of the recipe on the cluster. Device-hours count the devices held during start-up too."""

    name: str  # "round 3: train"
    group: str  # "rounds: training", what the table sums over rounds
    work: str  # what is computed, in words
    prefill_tokens: float = 0.0
    decode_tokens: float = 0.0
    train_tokens: float = 0.0
    flops: float = 0.0
    wall_s: float = 0.0
    device_hours: float = 0.0
    hours_by_kind: dict[str, float] = field(default_factory=dict)
    share: float = 0.0

    @property
    def tokens(self) -> float:
        return self.prefill_tokens + self.decode_tokens + self.train_tokens


@dataclass
class Plan:
    workload: Workload
    cluster: Cluster
    policy_rates: Rates
    judge_rates: Rates
    stages: list[Stage]

    @property
    def device_hours(self) -> float:
        return sum(s.device_hours for s in self.stages)

    @property
    def wall_s(self) -> float:
        """Stages run one after another, each on the whole cluster."""
        return sum(s.wall_s for s in self.stages)

    @property
    def flops(self) -> float:
        return sum(s.flops for s in self.stages)

    @property
    def tokens(self) -> float:
        return sum(s.tokens for s in self.stages)

    def groups(self) -> list[Stage]:
        """The stages summed by group (all rounds' training in one row, say), in order of first appearance."""
        merged: dict[str, Stage] = {}
        works: dict[str, list[str]] = {}
        for s in self.stages:
            g = merged.setdefault(s.group, Stage(s.group, s.group, ""))
            works.setdefault(s.group, []).append(s.work)
            g.work = works[s.group][0] if len(set(works[s.group])) == 1 else \
                f"{works[s.group][0]} ... {works[s.group][-1]}"
            for key in ("prefill_tokens", "decode_tokens", "train_tokens", "flops", "wall_s", "device_hours",
                        "share"):
                setattr(g, key, getattr(g, key) + getattr(s, key))
            for kind, hours in s.hours_by_kind.items():
                g.hours_by_kind[kind] = g.hours_by_kind.get(kind, 0.0) + hours
        return list(merged.values())

    def by_kind(self) -> dict[str, float]:
        """Device-hours by the kind of work, whatever stage it is in."""
        return {kind: sum(s.hours_by_kind.get(kind, 0.0) for s in self.stages) for kind in KINDS}

    def dominant(self) -> Stage:
        return max(self.groups(), key=lambda g: g.device_hours)


def estimate(work: Workload, cluster: Cluster) -> Plan:
    """Every stage of the recipe in run order: step 0 (the SFT models and the judge), the pool (few-shot
    prompts, embeddings, k-means), then per round the responses, (round 1) the judge's self-distillation,
    the scores, and a training from the base on the seed plus every round's best so far."""
    policy, judge = cluster.rates.at(work.params), cluster.rates.at(work.judge_size)
    stages: list[Stage] = []
    group_up = False  # a warm worker group is kept from the previous training

    def add(name: str, group: str, text: str, rates: Rates, prefill: float = 0.0, decode: float = 0.0,
            train: float = 0.0, kmeans_flops: float = 0.0) -> None:
        nonlocal group_up
        seconds = {"decode": decode / rates.decode_tokens_per_s, "prefill": prefill / rates.prefill_tokens_per_s,
                   "training": train / rates.train_tokens_per_s, "clustering": kmeans_flops / rates.kmeans_flops_per_s}
        if train:
            startup = rates.warm_training_startup_s if group_up else rates.training_startup_s
            group_up = work.warm_training
        else:
            startup = rates.stream_startup_s if prefill or decode else 0.0
            # Every stage here takes the whole cluster: on GPUs the replicas need the devices the group holds,
            # so the driver ends it (make_room); CPU workers share their nodes with the replicas, as measured.
            group_up = group_up and cluster.kind == "cpu" if (prefill or decode) else group_up
        seconds["start-up"] = startup * cluster.devices
        unit = cluster.hours_per_device_hour / 3600
        hours = {kind: s * unit for kind, s in seconds.items()}
        stages.append(Stage(
            name, group, text, prefill_tokens=prefill, decode_tokens=decode, train_tokens=train,
            flops=FORWARD_FLOPS_PER_PARAM * rates.params * (prefill + decode)
            + TRAIN_FLOPS_PER_PARAM * rates.params * train + kmeans_flops,
            wall_s=(sum(seconds.values()) - seconds["start-up"]) / cluster.devices + startup,
            device_hours=sum(hours.values()), hours_by_kind=hours))

    seed_passes = _passes(work.seed_sft_rows, work.epochs, work.train_rows_cap)
    for i in range(1, work.sft_models + 1):
        add(f"step 0: sft-{i}", "step 0: SFT models", f"{work.seed_sft_rows:,} rows x {seed_passes:g} passes x "
            f"{work.row_tokens} tokens", policy, train=work.seed_sft_rows * seed_passes * work.row_tokens)
    judge_passes = _passes(work.judge_rows, work.judge_epochs, work.judge_rows_cap)
    add("step 0: judge", "step 0: judge", f"{work.judge_rows:,} triplets x {judge_passes:g} passes x "
        f"{work.judge_row_tokens} tokens", judge, train=work.judge_rows * judge_passes * work.judge_row_tokens)
    add("pool: prompts", "pool: prompts", f"{work.attempts:,} few-shot requests of {work.request_tokens} tokens, "
        f"{work.prompt_tokens} written", policy, prefill=work.attempts * work.request_tokens,
        decode=work.attempts * work.prompt_tokens)
    add("pool: embeddings", "pool: embeddings", f"{work.pool_size:,} prompts x {work.prompt_tokens} tokens",
        policy, prefill=work.pool_size * work.prompt_tokens)
    clusters = min(work.clusters, work.pool_size)
    add("pool: clusters", "pool: clusters", f"{work.pool_size:,} x {clusters:,} distances in {work.embed_dim} "
        f"dimensions x {work.kmeans_epochs + 1} passes", policy,
        kmeans_flops=2.0 * work.pool_size * clusters * work.embed_dim * (work.kmeans_epochs + 1))

    responses = work.prompts_per_round * work.responses_per_prompt
    for r in range(1, work.rounds + 1):
        add(f"round {r}: responses", "rounds: responses", f"{responses:,} responses x {work.response_tokens} "
            "tokens", policy, prefill=responses * (work.chat_tokens + work.prompt_tokens),
            decode=responses * work.response_tokens)
        labelled = min(work.distill_responses, responses)
        if r == 1 and labelled:
            add("round 1: distill labels", "round 1: judge distillation", f"{labelled:,} judgments", judge,
                prefill=labelled * work.judgment_tokens)
            passes = _passes(labelled, work.judge_epochs, work.judge_rows_cap)
            add("round 1: distill training", "round 1: judge distillation", f"{labelled:,} rows x {passes:g} passes",
                judge, train=labelled * passes * work.judge_row_tokens)
        add(f"round {r}: scores", "rounds: scores", f"{responses:,} judgments x {work.judgment_tokens} tokens",
            judge, prefill=responses * work.judgment_tokens)
        rows = work.seed_sft_rows + r * work.prompts_per_round
        passes = _passes(rows, work.epochs, work.train_rows_cap)
        add(f"round {r}: train", "rounds: training", f"{rows:,} rows x {passes:g} passes x {work.row_tokens} tokens",
            policy, train=rows * passes * work.row_tokens)

    total = sum(s.device_hours for s in stages)
    for s in stages:
        s.share = s.device_hours / total if total else 0.0
    return Plan(work, cluster, policy, judge, stages)


# ---- the paper's setting ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Reported:
    """A compute figure a paper reports, as it words it."""

    devices: int
    kind: Literal["gpu", "cpu"]
    gpu: str
    days: float
    wording: str
    source: str

    @property
    def device_hours(self) -> float:
        return self.devices * self.days * 24


PAPER_REPORTED = Reported(
    devices=512, kind="gpu", gpu="h100", days=5.0,
    wording="512 H100s for about 5 days for 10 rounds (about 100M policy samples and as many judge passes)",
    source="ALMA, arXiv 2412.04305")
# How far the estimate may sit from the paper's figure and still be called in agreement: it counts model
# FLOPs at the stated utilisation, and the paper's days hold everything that leaves out (docs/plan.md).
PAPER_FACTOR = 20.0


def paper_workload() -> Workload:
    """The paper's setting: Llama-3-8B, 5k SFT rows, 4k judge triplets, a 100M-prompt pool in 1M clusters,
    K = 50k, N = 200, R = 10, 20k self-distillation labels; what it leaves open, assumed (docs/plan.md)."""
    return Workload(
        params=LLAMA3_8B_PARAMS, responses_per_prompt=200, prompts_per_round=50_000, rounds=10,
        seed_sft_rows=5000, judge_rows=4000, distill_responses=20_000, pool_prompts=100_000_000,
        few_shot=5, clusters=1_000_000, embed_dim=LLAMA3_8B_CONFIG["hidden_size"],
        prompt_tokens=64, response_tokens=512, chat_tokens=11, train_length=4096, judge_length=4096)


@dataclass(frozen=True)
class Comparison:
    estimate_days: float
    estimate_device_hours: float
    reported: Reported
    ratio: float  # estimate / reported, in wall time on the same cluster
    factor: float

    @property
    def within(self) -> bool:
        return 1 / self.factor <= self.ratio <= self.factor


def compare(plan: Plan, reported: Reported = PAPER_REPORTED, factor: float = PAPER_FACTOR) -> Comparison:
    days = plan.wall_s / 86400
    return Comparison(days, plan.device_hours, reported, days / reported.days, factor)


# ---- benchmark output ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measured:
    """Rates one benchmark's JSON output gives (None: not measured there), for the model it names."""

    source: str
    model: str  # the model spec the benchmark ran (builtin:... or a folder)
    kind: Literal["gpu", "cpu"] | None  # None: the file does not say
    cores: int | None  # CPU threads it used; None: not recorded
    decode_tokens_per_s: float | None = None
    judgments_per_s: float | None = None
    train_tokens_per_s: float | None = None
    training_startup_s: float | None = None  # a training on a worker group of its own, outside its steps
    warm_training_startup_s: float | None = None  # a warm worker group's second training, outside its steps


def _key(data: Mapping[str, Any], path: str, name: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"{name}: missing key '{path}'")
        node = node[part]
    return node


def _seconds(value: Any, name: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}: '{path}' is not a number of seconds >= 0: {value!r}")
    return float(value)


def _rate(values: Any, name: str, path: str) -> float:
    """A benchmark's rate: a number, or the median of a list of numbers (repeats) or of runs' `per_s`."""
    if isinstance(values, list):
        values = [v.get("per_s") if isinstance(v, Mapping) else v for v in values]
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return float(statistics.median(values))
    elif isinstance(values, (int, float)) and not isinstance(values, bool) and values > 0:
        return float(values)
    raise ConfigError(f"{name}: key '{path}' holds no rate ({str(values)[:60]})")


def _cores(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def read_benchmark(data: Any, name: str, model: str | None = None) -> Measured:
    """What `alma plan` takes from a benchmark's JSON (`--out FILE`): vllm_vs_transformers.py (generation
    tokens/s, judgments/s: vLLM's where it ran, else transformers'), judge_throughput.py (in-process
    judgments/s), train_overhead.py (a training's start-up on its own worker group and a warm one's),
    base_model_cost.py (generation tokens/s at the largest batch, vLLM's where it ran, and
    training tokens/s of the last SFT step; with several models, the one named `model`)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{name}: not a benchmark's JSON object (expected keys 'runs', 'in_process_per_s' or "
                          "'results')")
    if data.get("benchmark") == "train_overhead":  # train_overhead.py: the start-ups, seconds
        return Measured(name, str(_key(data, "model", name)), None, None,
                        training_startup_s=_seconds(_key(data, "training_startup_s", name), name, "training_startup_s"),
                        warm_training_startup_s=_seconds(_key(data, "warm_training_startup_s", name), name,
                                                         "warm_training_startup_s"))
    if "runs" in data:
        args = _key(data, "args", name)
        runs = _key(data, "runs", name)
        engine = "vllm" if isinstance(runs, Mapping) and runs.get("vllm_gen") else "tf"
        device = _key(data, "args.device", name)
        return Measured(name, str(_key(data, "args.model", name)), "gpu" if device == "cuda" else "cpu",
                        _cores(args.get("threads")) if isinstance(args, Mapping) else None,
                        decode_tokens_per_s=_rate(_key(data, f"runs.{engine}_gen", name), name, f"runs.{engine}_gen"),
                        judgments_per_s=_rate(_key(data, f"runs.{engine}_judge", name), name, f"runs.{engine}_judge"))
    if "in_process_per_s" in data:
        return Measured(name, str(_key(data, "model", name)), None, _cores(data.get("cpus")),
                        judgments_per_s=_rate(data["in_process_per_s"], name, "in_process_per_s"))
    results = data.get("results", data)  # base_model_cost.py: the --out file, or what --only prints
    entries = {spec: entry for spec, entry in results.items() if isinstance(entry, Mapping)
               and ("float32" in entry or "bfloat16" in entry or "train" in entry or "vllm" in entry)}
    if not entries:
        raise ConfigError(f"{name}: not a benchmark output alma plan reads: missing key 'runs', "
                          "'in_process_per_s' or 'results'")
    if len(entries) > 1 and model not in entries:
        raise ConfigError(f"{name}: holds {', '.join(entries)}; plan one of them with --model")
    spec = model if model in entries else next(iter(entries))
    entry = entries[spec]
    decode = None
    vllm = entry.get("vllm")
    rates = {k: v for k, v in (vllm or {}).items() if k.startswith("tok_s_b")} if isinstance(vllm, Mapping) else {}
    if not rates:
        for dtype in ("float32", "bfloat16"):
            if isinstance(entry.get(dtype), Mapping):
                rates = {k: v for k, v in entry[dtype].items() if k.startswith("tok_s_b")}
                break
    if rates:
        largest = max(rates, key=lambda k: int(k.removeprefix("tok_s_b")))
        decode = _rate(rates[largest], name, f"results.{spec}.{largest}")
    train = None
    if isinstance(entry.get("train"), Mapping):
        steps = sorted((k for k in entry["train"] if k.startswith("step") and k.endswith("_s")
                        and not k.endswith("cpu_s")), key=lambda k: int(k[4:-2]))
        if not steps:
            raise ConfigError(f"{name}: missing key 'results.{spec}.train.step1_s'")
        tokens = _rate(_key(entry, "train.tokens_per_step", name), name, f"results.{spec}.train.tokens_per_step")
        train = tokens / _rate(entry["train"][steps[-1]], name, f"results.{spec}.train.{steps[-1]}")
    if decode is None and train is None:
        raise ConfigError(f"{name}: missing key 'results.{spec}.float32.tok_s_b<batch>' or 'results.{spec}.train'")
    return Measured(name, spec, None, None, decode_tokens_per_s=decode, train_tokens_per_s=train)


def check_kind(measured: Measured, cluster_kind: str) -> None:
    """A benchmark measured on one kind of device says nothing about the other."""
    if measured.kind is not None and measured.kind != cluster_kind:
        where = "a GPU" if measured.kind == "gpu" else "CPU"
        flag = "--gpus" if measured.kind == "gpu" else "--cpu-nodes"
        raise ConfigError(f"{measured.source}: measured on {where}; plan it with {flag}")


def apply_measured(rates: Rates, measured: Measured, measured_params: float, cluster_kind: str,
                   cores_per_node: int, judgment_tokens: float = BENCHMARK_JUDGMENT_TOKENS) -> Rates:
    """Per-device rates at `rates.params` with what a benchmark measured in place of the defaults: scaled
    from the benchmarked model's size, and on CPU from the cores it used to the node's."""
    check_kind(measured, cluster_kind)
    scale = measured_params / rates.params
    if cluster_kind == "cpu" and measured.cores:
        scale *= cores_per_node / measured.cores
    changes: dict[str, float] = {}
    if measured.decode_tokens_per_s:
        changes["decode_tokens_per_s"] = measured.decode_tokens_per_s * scale
    if measured.judgments_per_s:
        changes["prefill_tokens_per_s"] = measured.judgments_per_s * judgment_tokens * scale
    if measured.train_tokens_per_s:
        changes["train_tokens_per_s"] = measured.train_tokens_per_s * scale
    for key in ("training_startup_s", "warm_training_startup_s"):  # fixed costs: not scaled
        if getattr(measured, key) is not None:
            changes[key] = getattr(measured, key)
    got = ", ".join(k.removesuffix("_tokens_per_s") for k in changes)
    return dataclasses.replace(rates, **changes, source=f"{rates.source}; {got} from {measured.source}")


# ---- assumptions set by name -----------------------------------------------------------------------

def assume(obj: Any, key: str, text: str) -> Any:
    """`obj` (a Workload, GpuSpec or Rates) with field `key` set from text, typed as the field is."""
    hints = typing.get_type_hints(type(obj))
    if key not in hints or key == "params" and isinstance(obj, Rates):
        raise ConfigError(f"--assume {key}: no such assumption")
    allowed = typing.get_args(hints[key]) or (hints[key],)
    if bool in allowed:
        flag = text.strip().lower()
        if flag not in ("true", "false", "1", "0"):
            raise ConfigError(f"--assume {key}={text}: true or false")
        return dataclasses.replace(obj, **{key: flag in ("true", "1")})
    if text.strip().lower() in ("none", "null") and type(None) in allowed:
        return dataclasses.replace(obj, **{key: None})
    try:
        number = float(text)
    except ValueError:
        if str in allowed:
            return dataclasses.replace(obj, **{key: text})
        raise ConfigError(f"--assume {key}={text}: not a number") from None
    if int in allowed and float not in allowed:
        if not number.is_integer():
            raise ConfigError(f"--assume {key}={text}: a whole number is needed")
        return dataclasses.replace(obj, **{key: int(number)})
    return dataclasses.replace(obj, **{key: number})
