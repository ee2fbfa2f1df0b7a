"""The DPO variant: its config (and that it leaves SFT runs' config hash alone), which models and pairs a
round trains on, and a DPO round end to end on the tiny model: `judge_and_train` with round.training=dpo
commits the round's pairs and a checkpoint trained by TRL's DPOTrainer inside Ray Train.

The end-to-end test runs only the training half of a round: round 1's judged responses are committed by
hand as its scores stage (which the round then skips), so no Serve deployment or prompt pool is needed;
the rest of the round (best-of-N, pairs, the Ray Train DPO run, the checkpoint's stage) is the real code."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import load_file

from alma.config import PRESETS, config_changes, load_config
from alma.core.errors import ConfigError
from alma.core.manifest import read_manifest
from alma.core.run_layout import RunLayout


@pytest.mark.parametrize("preset", PRESETS)
def test_dpo_settings_leave_an_sft_run_alone(preset):
    sft = load_config(preset)
    assert sft.round.training == "sft"
    untouched = load_config(preset, overrides=["dpo.beta=0.5", "dpo_train.learning_rate=1e-3", "eval.bootstrap=50"])
    assert untouched.fingerprint() == sft.fingerprint(), "DPO and eval settings change nothing in an SFT run"
    dpo = load_config(preset, overrides=["round.training=dpo"])
    assert dpo.fingerprint() != sft.fingerprint()
    assert config_changes(sft, dpo) == ['round.training "sft" -> "dpo"']
    beta = load_config(preset, overrides=["round.training=dpo", "dpo.beta=0.5"])
    assert config_changes(dpo, beta) == ["dpo.beta 0.1 -> 0.5"]


@pytest.mark.parametrize("overrides, fragment", [
    (["round.training=dpo", "round.responses_per_prompt=1"], "a pair is two responses"),
    (["round.training=ppo"], "'round.training'"),
    (["dpo.pairs=best_vs_median"], "'dpo.pairs'"),
    (["dpo.beta=0"], "'dpo.beta'"),
    (["eval.baseline=sft-3"], "not an initial SFT model"),
])
def test_bad_dpo_and_eval_settings(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config("tiny", overrides=overrides)


def test_start_reference_and_data_per_round(tmp_path):
    from alma.core.pairs import Pair
    from alma.jobs.round_dpo import dpo_models, pair_table, preference_rows
    from alma.jobs.run_context import RunContext

    def ctx(*overrides):
        return RunContext(load_config("tiny", overrides=[f"out_dir={tmp_path}", "round.training=dpo", *overrides]),
                          tmp_path)

    sft1, prev = tmp_path / "checkpoints" / "sft-1", tmp_path / "checkpoints" / "round-2"
    assert dpo_models(ctx(), 3) == (sft1, sft1)
    assert dpo_models(ctx("dpo.start=latest"), 3) == (prev, prev)
    assert dpo_models(ctx("dpo.start=latest", "dpo.reference=initial"), 3) == (prev, sft1)
    assert dpo_models(ctx("dpo.start=latest"), 1) == (sft1, sft1), "round 1 has no previous model"
    for r in (1, 2):
        row = {"prompt_id": f"p{r}", "prompt": f"q{r}", "checkpoint": "sft-1", "sample": 0}
        pairs_file = RunLayout(tmp_path).round(r).pairs_file
        pairs_file.parent.mkdir(parents=True)
        pq.write_table(pair_table([Pair({**row, "response": "good", "score": 9.0},
                                        {**row, "response": "bad", "score": 2.0})]), pairs_file)
    assert [x["source"] for x in preference_rows(ctx(), 2)] == ["round-1", "round-2"]
    assert preference_rows(ctx("dpo.data=this_round"), 2) == [
        {"prompt": [{"role": "user", "content": "q2"}], "chosen": "good", "rejected": "bad", "source": "round-2"}]
    empty = pair_table([])
    assert empty.num_rows == 0 and empty.schema == pq.read_table(pairs_file).schema, \
        "a round without pairs writes the same columns"


def _scores(prompts: dict[str, list[float]]) -> list[dict]:
    return [{"prompt_id": pid, "prompt": f"Question {pid}?", "checkpoint": "sft-1" if s % 2 else "sft-2",
             "sample": s // 2, "response": f"Answer {s} to {pid}.", "score": score,
             "distribution": [1 / 11] * 11, "missing": 0}
            for pid, scores in prompts.items() for s, score in enumerate(scores)]


@pytest.mark.slow
def test_a_dpo_round_trains_on_its_pairs(tmp_path, tiny_model):
    from alma.cluster.local import start_ray, stop_ray
    from alma.jobs.rounds import judge_and_train
    from alma.jobs.run_context import RunContext

    run = tmp_path / "run"
    cfg = load_config("tiny", overrides=[f"out_dir={run}", "round.training=dpo", "round.responses_per_prompt=3"])
    ctx = RunContext(cfg, run)
    ctx.open()
    sft1 = ctx.layout.checkpoint("sft-1")
    sft1.parent.mkdir(parents=True)
    sft1.symlink_to(tiny_model)
    rows = _scores({"a": [2.0, 8.5, 5.0], "b": [6.0, 1.0, 3.0], "tied": [4.0, 4.0, 4.0]})
    ctx.stage(ctx.layout.round(1).scores, "round 1 judge",
              lambda w: pq.write_table(pa.Table.from_pylist(rows), w.path / "scores.parquet"))
    ctx.stage(ctx.layout.round(1).draw, "round 1 draw", lambda w: setattr(w, "info", {"diversity": {}}))

    ray_ctx = start_ray(run)
    try:
        result = judge_and_train(ctx, 1, tiny_model, Path("unused"), Path("unused"), seed_sft=[])
    finally:
        stop_ray(ray_ctx)

    pairs = pq.read_table(ctx.layout.round(1).pairs_file).to_pylist()
    best = {b["prompt_id"]: b["response"]
            for b in pq.read_table(ctx.layout.round(1).best_file).to_pylist()}
    assert [p["prompt_id"] for p in pairs] == ["a", "b"], "the all-tied prompt gives no pair"
    assert all(p["chosen"] == best[p["prompt_id"]] and p["chosen_score"] > p["rejected_score"] for p in pairs)
    assert read_manifest(ctx.layout.round(1).pairs).info["no_lower"] == 1

    out = ctx.layout.checkpoint("round-1")
    assert result.checkpoint == out and result.train_examples == 2
    manifest = read_manifest(out)
    info = manifest.info
    assert manifest.rows == 2 and info["method"] == "dpo" and info["sources"] == {"round-1": 2}
    assert info["base"] == info["reference"] == str(sft1), "round 1 starts from sft-1, its own reference"
    assert info["dpo"] == cfg.dpo.model_dump() and info["dpo"]["pairs"] == "best_vs_random"
    assert info["steps"] == cfg.dpo_train.max_steps and info["last_rewards/accuracies"] is not None
    data = pq.read_table(out / "train_data.parquet")
    assert data.column_names == ["prompt", "chosen", "rejected", "source"]
    assert json.loads(data["prompt"][0].as_py()) == [{"role": "user", "content": "Question a?"}]
    trained, initial = load_file(out / "model.safetensors"), load_file(tiny_model / "model.safetensors")
    assert any((trained[k] != initial[k]).any() for k in initial), "DPO moved the weights"
