"""`alma plan`: the arithmetic by hand on small cases, parameter counts against real weights, the paper's
setting against its reported compute, benchmark files, bad input, and the JSON's shape. Fast: no Ray,
nothing trained (the tiny model is built once per session, as other fast tests do)."""

import dataclasses
import json
import re

import pytest

from alma.cli import main
from alma.core.errors import ConfigError
from alma.core.plan import (BENCHMARK_JUDGMENT_TOKENS, CPU_REFERENCE, GPUS, LLAMA3_8B_CONFIG, LLAMA3_8B_PARAMS,
                            PAPER_FACTOR, Cluster, Rates, Workload, apply_measured, assume, compare, cpu_rates,
                            estimate, gpu_rates, llama_params, paper_workload, read_benchmark)

# Round numbers, so that every expected value below is a sum a reader can redo.
RATES = Rates(params=1e9, decode_tokens_per_s=100.0, prefill_tokens_per_s=1000.0, train_tokens_per_s=50.0,
              kmeans_flops_per_s=1e9, training_startup_s=0.0, warm_training_startup_s=0.0,
              stream_startup_s=0.0)


def small(**changes) -> Workload:
    """A 1e9-parameter model, K = 10, N = 2, R = 1, a 20-prompt pool, no template tokens."""
    fields = dict(params=1e9, responses_per_prompt=2, prompts_per_round=10, rounds=1, seed_sft_rows=4, judge_rows=3,
                  distill_responses=0, pool_prompts=20, pool_keep_rate=0.5, few_shot=2, clusters=5, kmeans_epochs=1,
                  embed_dim=8, prompt_tokens=10, response_tokens=20, chat_tokens=0, few_shot_header_tokens=0,
                  few_shot_item_tokens=0, judge_template_tokens=30, judge_answer_tokens=0, train_length=1000,
                  judge_length=1000, epochs=1.0, judge_epochs=1.0)
    return Workload(**{**fields, **changes})


def test_a_small_plan_by_hand():
    plan = estimate(small(), Cluster("gpu", 1, RATES, name="test"))
    got = {s.name: (s.prefill_tokens, s.decode_tokens, s.train_tokens, s.flops, s.wall_s) for s in plan.stages}
    # (prefill, decode, train tokens, FLOPs, seconds). A training row is prompt + response = 30 tokens, a
    # judgment template + prompt + response = 60, a few-shot request 2 x 10 = 20; 20 / 0.5 = 40 requests.
    expected = {
        "step 0: sft-1": (0, 0, 4 * 30, 6e9 * 120, 120 / 50),
        "step 0: sft-2": (0, 0, 120, 6e9 * 120, 2.4),
        "step 0: judge": (0, 0, 3 * 60, 6e9 * 180, 180 / 50),
        "pool: prompts": (40 * 20, 40 * 10, 0, 2e9 * 1200, 800 / 1000 + 400 / 100),
        "pool: embeddings": (20 * 10, 0, 0, 2e9 * 200, 0.2),
        "pool: clusters": (0, 0, 0, 2 * 20 * 5 * 8 * 2, 3200 / 1e9),
        "round 1: responses": (20 * 10, 20 * 20, 0, 2e9 * 600, 0.2 + 4.0),
        "round 1: scores": (20 * 60, 0, 0, 2e9 * 1200, 1.2),
        "round 1: train": (0, 0, (4 + 10) * 30, 6e9 * 420, 420 / 50),
    }
    assert list(got) == list(expected)  # run order
    for name, values in expected.items():
        assert got[name] == pytest.approx(values), name
    assert plan.tokens == 4040
    assert plan.flops == pytest.approx(1.144e13 + 3200)
    assert plan.wall_s == pytest.approx(27.2 + 3.2e-6)
    assert plan.device_hours == pytest.approx(plan.wall_s / 3600)
    assert sum(s.share for s in plan.stages) == pytest.approx(1.0)
    assert plan.dominant().name == "rounds: training"  # 8.4 s of 27.2


def test_a_warm_worker_group_saves_the_start_up_of_the_trainings_it_runs():
    """Step 0's trainings follow one another, so the second and third are jobs of the first one's worker group;
    on GPUs the streams between the later trainings take its devices (a cold start each), on CPU nodes it
    stays beside them; `warm_training=false` charges every training the full start-up."""
    rates = dataclasses.replace(RATES, training_startup_s=10.0, warm_training_startup_s=1.0)
    work = small(rounds=2, pool_prompts=40)

    def startups(kind: str, **changes) -> list[float]:
        plan = estimate(dataclasses.replace(work, **changes), Cluster(kind, 1, rates))
        return [s.wall_s - s.train_tokens / rates.train_tokens_per_s for s in plan.stages if s.train_tokens]

    assert startups("gpu") == pytest.approx([10, 1, 1, 10, 10])  # sft-1, sft-2, judge, round 1, round 2
    assert startups("cpu") == pytest.approx([10, 1, 1, 1, 1])
    assert startups("cpu", warm_training=False) == pytest.approx([10] * 5)
    assert assume(work, "warm_training", "false").warm_training is False
    with pytest.raises(ConfigError, match="true or false"):
        assume(work, "warm_training", "maybe")


def test_devices_divide_the_compute_and_start_ups_hold_them():
    rates = dataclasses.replace(RATES, training_startup_s=10.0, stream_startup_s=1.0)
    plan = estimate(small(), Cluster("gpu", 4, rates))
    train = next(s for s in plan.stages if s.name == "round 1: train")
    assert train.wall_s == pytest.approx(8.4 / 4 + 10)
    assert train.device_hours == pytest.approx((8.4 + 10 * 4) / 3600)
    scores = next(s for s in plan.stages if s.name == "round 1: scores")
    assert scores.wall_s == pytest.approx(1.2 / 4 + 1)
    clusters = next(s for s in plan.stages if s.name == "pool: clusters")
    assert clusters.hours_by_kind["start-up"] == 0  # no stream: the k-means runs on what the pool wrote
    # A CPU node's hours are core-hours.
    cpu = estimate(small(), Cluster("cpu", 1, RATES, cores_per_node=8))
    assert cpu.device_hours == pytest.approx(8 * 27.2 / 3600 + 8 * 3.2e-6 / 3600)


def test_rounds_grow_the_training_set_and_round_1_distils():
    plan = estimate(small(rounds=3, pool_prompts=40, distill_responses=50, epochs=2.0),
                    Cluster("gpu", 1, RATES))
    train = [s.train_tokens for s in plan.stages if s.group == "rounds: training"]
    assert train == [(4 + 10) * 2 * 30, (4 + 20) * 2 * 30, (4 + 30) * 2 * 30]
    distill = {s.name: s for s in plan.stages if s.group == "round 1: judge distillation"}
    # M = 50 is more than round 1's 20 responses: all 20 are labelled, then trained on once (judge_epochs).
    assert distill["round 1: distill labels"].prefill_tokens == 20 * 60
    assert distill["round 1: distill training"].train_tokens == 20 * 1 * 60
    names = [s.name for s in plan.stages]
    assert names.index("round 1: distill training") < names.index("round 1: scores")
    assert "round 2: distill labels" not in names


def test_max_steps_caps_rows_and_lengths_are_cut():
    plan = estimate(small(train_rows_cap=8, train_length=25, judge_length=40), Cluster("gpu", 1, RATES))
    tokens = {s.name: s.train_tokens for s in plan.stages}
    assert tokens["step 0: sft-1"] == 8 * 25  # 8 rows seen, each cut from 30 to 25 tokens
    assert tokens["round 1: train"] == pytest.approx(8 * 25)
    assert tokens["step 0: judge"] == 3 * 40


def test_rates_from_a_datasheet_and_from_the_cpu_measurements():
    h100 = gpu_rates(GPUS["h100"], 8e9)
    assert h100.train_tokens_per_s == pytest.approx(989e12 * 0.4 / (6 * 8e9))
    assert h100.prefill_tokens_per_s == pytest.approx(989e12 * 0.4 / (2 * 8e9))
    assert h100.decode_tokens_per_s == pytest.approx(64 * 3.35e12 * 0.6 / (2 * 8e9))  # bandwidth-bound
    wide = gpu_rates(assume(GPUS["h100"], "decode_batch", "512"), 8e9)  # so many sequences that compute caps it
    assert wide.decode_tokens_per_s == wide.prefill_tokens_per_s
    assert h100.at(16e9).train_tokens_per_s == pytest.approx(h100.train_tokens_per_s / 2)
    four = cpu_rates(4)
    assert four.decode_tokens_per_s == pytest.approx(2 * CPU_REFERENCE.decode_tokens_per_s)
    assert four.training_startup_s == CPU_REFERENCE.training_startup_s


def test_llama_params_match_the_tiny_models_weights(tiny_model):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    config = json.loads((tiny_model / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    assert llama_params(config) == sum(p.numel() for p in model.parameters())  # tied weights counted once
    untied = {**config, "tie_word_embeddings": False}
    assert llama_params(untied) - llama_params(config) == config["vocab_size"] * config["hidden_size"]


def test_llama_params_of_llama3_8b_and_a_config_that_is_not_one():
    assert LLAMA3_8B_PARAMS == llama_params(LLAMA3_8B_CONFIG) == 8_030_261_248  # "8B": 8.03e9
    with pytest.raises(ConfigError, match="lacks 'intermediate_size'"):
        llama_params({"hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 3, "num_attention_heads": 1})


def _paper_lines(out: str) -> tuple[str, str]:
    lines = out.splitlines()
    return lines[-2], lines[-1]


def test_the_paper_setting_is_within_the_stated_factor_of_its_5_days(capsys):
    assert main(["plan", "--paper"]) == 0
    out = capsys.readouterr().out
    reported, estimated = _paper_lines(out)
    assert "512 H100s for about 5 days for 10 rounds" in reported
    assert "61,440 GPU-hours" in reported
    found = re.search(r"estimate on 512 x H100: ([\d.]+) days \(([\d,]+) GPU-hours\), ([\d.e-]+)x the paper's 5 "
                      r"days: (within|outside) the stated factor of ([\d.]+)", estimated)
    assert found, estimated
    days, hours, ratio, verdict, factor = found.groups()
    assert float(factor) == PAPER_FACTOR
    assert float(ratio) == pytest.approx(float(days) / 5, rel=0.01)
    assert 1 / float(factor) <= float(ratio) <= float(factor), estimated
    assert verdict == "within"
    # The comparison is the table's own total, not a number of its own.
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split()[3] == hours
    assert "N = 200, K = 50,000, R = 10" in out and "pool 100,000,000 prompts" in out


def test_the_paper_comparison_moves_with_the_arithmetic():
    """Halving the decode rate must show in the comparison: it is computed, not stored."""
    work = paper_workload()
    spec = GPUS["h100"]
    base = compare(estimate(work, Cluster("gpu", 512, gpu_rates(spec, work.params))))
    slow = compare(estimate(work, Cluster("gpu", 512, gpu_rates(assume(spec, "bandwidth_efficiency", "0.3"),
                                                                work.params))))
    assert slow.estimate_days > base.estimate_days
    assert not compare(estimate(work, Cluster("gpu", 1, gpu_rates(spec, work.params)))).within  # 512x the days


def test_the_cpu_align_plan_is_near_its_measured_run(capsys):
    """docs/alignment.md: the cpu-align run's stages added up to 6,227 s on this 2-core machine (loaded)."""
    assert main(["plan", "--preset", "cpu-align", "--params", "134515008", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert 6227 / 1.5 <= plan["total"]["wall_s"] <= 6227 * 1.5
    w = plan["workload"]
    assert (w["responses_per_prompt"], w["prompts_per_round"], w["rounds"]) == (6, 24, 3)
    assert (w["seed_sft_rows"], w["judge_rows"], w["distill_responses"], w["pool_attempts"]) == (96, 200, 48, 160)


def test_the_json_shape(capsys):
    assert main(["plan", "--paper", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert set(plan) == {"model", "workload", "cluster", "rates", "stages", "groups", "total", "dominant", "by_kind",
                         "paper"}
    assert len(plan["stages"]) == 3 + 3 + 10 * 3 + 2
    assert {s["name"] for s in plan["stages"]} >= {"step 0: sft-1", "pool: clusters", "round 10: train"}
    stage_keys = {"name", "group", "work", "tokens", "prefill_tokens", "decode_tokens", "train_tokens", "flops",
                  "wall_s", "device_hours", "device_hours_by_kind", "share"}
    assert all(set(s) == stage_keys for s in plan["stages"] + plan["groups"])
    assert plan["total"]["device_hours"] == pytest.approx(sum(s["device_hours"] for s in plan["stages"]))
    assert plan["total"]["wall_days"] == pytest.approx(plan["paper"]["estimate_days"])
    assert sum(plan["by_kind"].values()) == pytest.approx(plan["total"]["device_hours"])
    assert plan["cluster"] == {"kind": "gpu", "devices": 512, "gpu": "H100", "cores_per_node": None,
                               "unit": "GPU-hours"}
    assert plan["paper"]["within"] is True and plan["paper"]["gpus"] == 512
    assert plan["dominant"]["group"] in {g["name"] for g in plan["groups"]}


def test_a_preset_a_model_folder_and_a_cluster(capsys, monkeypatch, alma_cache, tiny_model):
    monkeypatch.setenv("ALMA_CACHE", str(alma_cache))
    assert main(["plan", "--preset", "tiny", "--json"]) == 0
    tiny = json.loads(capsys.readouterr().out)
    config = json.loads((tiny_model / "config.json").read_text())
    assert tiny["workload"]["params"] == llama_params(config)
    assert tiny["workload"]["embed_dim"] == config["hidden_size"]
    assert tiny["workload"]["train_rows_cap"] == 2 * 8  # the preset's max_steps x batch_size
    assert tiny["cluster"]["kind"] == "cpu" and tiny["cluster"]["cores_per_node"] == 2
    assert main(["plan", "--model", str(tiny_model), "--n", "3", "--gpus", "8", "--gpu", "h200", "--json"]) == 0
    folder = json.loads(capsys.readouterr().out)
    assert folder["workload"]["params"] == tiny["workload"]["params"]
    assert folder["workload"]["responses_per_prompt"] == 3
    assert folder["cluster"]["devices"] == 8 and folder["cluster"]["gpu"] == "H200"
    assert main(["plan", "--params", "1e9", "--cpu-nodes", "4", "--cores-per-node", "16", "--per-round"]) == 0
    out = capsys.readouterr().out
    assert "on 4 CPU nodes x 16 cores" in out and "round 2: train" in out and "CPU-hours" in out


def test_assumptions_by_name(capsys):
    assert main(["plan", "--paper", "--assume", "response_tokens=1024", "--assume", "train_mfu=0.5",
                 "--assume", "stream_startup_s=0", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["workload"]["response_tokens"] == 1024
    assert plan["rates"]["policy"]["train_tokens_per_s"] == pytest.approx(989e12 * 0.5 / (6 * LLAMA3_8B_PARAMS))
    assert plan["rates"]["policy"]["stream_startup_s"] == 0
    assert assume(small(), "train_rows_cap", "none").train_rows_cap is None
    with pytest.raises(ConfigError, match="whole number"):
        assume(small(), "rounds", "2.5")


BENCHMARKS = {
    "vllm_vs_transformers.json": {
        "args": {"model": "builtin:smollm2-135m", "device": "cpu", "threads": 1},
        "runs": {"tf_gen": [{"per_s": 7.8}], "tf_judge": [{"per_s": 0.82}], "vllm_gen": [{"per_s": 40.0},
                 {"per_s": 50.0}, {"per_s": 46.0}], "vllm_judge": [{"per_s": 0.8}], "serve_gen": []}},
    "judge_throughput.json": {"model": "builtin:smollm2-135m", "cpus": 2, "in_process_per_s": [1.0, 1.4]},
    "base_model_cost.json": {"results": {"builtin:smollm2-135m": {
        "float32": {"tok_s_b4": 1.0, "tok_s_b16": 2.1}, "vllm": {"error": "refused"},
        "train": {"step1_s": 300.0, "step2_s": 200.0, "tokens_per_step": 1000.0}}}},
    "train_overhead.json": {"benchmark": "train_overhead", "model": "builtin:tiny", "steps": [4, 16],
                            "training_startup_s": 26.5, "warm_training_startup_s": 0.6, "runs": {}},
}


def test_benchmark_outputs_are_read():
    vllm = read_benchmark(BENCHMARKS["vllm_vs_transformers.json"], "v.json")
    assert (vllm.model, vllm.kind, vllm.cores, vllm.decode_tokens_per_s, vllm.judgments_per_s) == (
        "builtin:smollm2-135m", "cpu", 1, 46.0, 0.8)  # vLLM's where it ran; medians of the repeats
    judge = read_benchmark(BENCHMARKS["judge_throughput.json"], "j.json")
    assert (judge.kind, judge.cores, judge.judgments_per_s) == (None, 2, pytest.approx(1.2))
    cost = read_benchmark(BENCHMARKS["base_model_cost.json"], "c.json")
    assert (cost.decode_tokens_per_s, cost.train_tokens_per_s) == (2.1, 1000.0 / 200.0)  # largest batch, last step
    # Measured at 1e8 parameters on 1 core, planned at 2e8 on 4-core nodes: x 0.5 x 4.
    rates = apply_measured(cpu_rates(4).at(2e8), vllm, 1e8, "cpu", 4, judgment_tokens=100.0)
    assert rates.decode_tokens_per_s == pytest.approx(46.0 * 2)
    assert rates.prefill_tokens_per_s == pytest.approx(0.8 * 100.0 * 2)
    with pytest.raises(ConfigError, match="v.json: measured on CPU; plan it with --cpu-nodes"):
        apply_measured(gpu_rates(GPUS["h100"], 1e8), vllm, 1e8, "gpu", 2)
    # Start-ups are fixed costs: taken as measured, whatever the model's size or the node's cores.
    overhead = read_benchmark(BENCHMARKS["train_overhead.json"], "t.json")
    rates = apply_measured(cpu_rates(8).at(2e9), overhead, 3e6, "cpu", 8)
    assert (rates.training_startup_s, rates.warm_training_startup_s) == (26.5, 0.6)
    assert rates.train_tokens_per_s == cpu_rates(8).at(2e9).train_tokens_per_s


@pytest.mark.parametrize("data, message", [
    ({"hello": 1}, "b.json: not a benchmark output alma plan reads: missing key 'runs'"),
    ({"runs": {}, "args": {"model": "m", "device": "cpu"}}, "b.json: missing key 'runs.tf_gen'"),
    ({"model": "m", "in_process_per_s": []}, "b.json: key 'in_process_per_s' holds no rate"),
    ({"results": {"a": {"train": {}}, "b": {"train": {}}}}, "b.json: holds a, b; plan one of them with --model"),
    ([1, 2], "b.json: not a benchmark's JSON object"),
    ({"benchmark": "train_overhead", "model": "m", "training_startup_s": -1, "warm_training_startup_s": 0},
     "b.json: 'training_startup_s' is not a number of seconds >= 0"),
])
def test_unknown_benchmark_files_name_the_file_and_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        read_benchmark(data, "b.json")
    assert str(err.value).startswith(message)


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alma: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


@pytest.mark.parametrize("argv, fragment", [
    (["--n", "-3"], "N (responses_per_prompt) must be > 0, got -3"),
    (["--paper", "--rounds", "0"], "R (rounds) must be > 0"),
    (["--params=-8e9"], "params must be > 0"),
    (["--gpus", "0"], "--gpus must be at least 1"),
    (["--cpu-nodes", "2", "--cores-per-node", "-1"], "--cores-per-node must be at least 1"),
    (["--paper", "--k", "20000000"], "draws need that many pool prompts"),
    (["--assume", "no_such_thing=1"], "--assume no_such_thing: no such assumption"),
    (["--assume", "response_tokens"], "expected KEY=VALUE"),
    (["--paper", "--assume", "train_mfu=1.5"], "train_mfu is a share, at most 1"),
    (["--gpu", "h200"], "--gpu names the GPU model of --gpus"),
    (["--model", "/no/such/model"], "/no/such/model/config.json: cannot read the model's config"),
])
def test_bad_input_is_one_line_and_exit_2(argv, fragment, capsys, tmp_path, monkeypatch):
    # Refused before the default preset's model is sized: nothing is built into an empty cache.
    monkeypatch.setenv("ALMA_CACHE", str(tmp_path / "cache"))
    assert main(["plan", *argv]) == 2
    assert fragment in _one_error_line(capsys)
    assert not (tmp_path / "cache").exists()


def test_unreadable_and_unknown_files_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALMA_CACHE", str(tmp_path / "cache"))  # no file here needs a model built
    missing = tmp_path / "missing.json"
    assert main(["plan", "--paper", "--throughputs", str(missing)]) == 2
    assert f"{missing}: cannot read the benchmark output" in _one_error_line(capsys)
    text = tmp_path / "notes.json"
    text.write_text("not json")
    assert main(["plan", "--paper", "--throughputs", str(text)]) == 2
    assert f"{text}: the benchmark output is not JSON" in _one_error_line(capsys)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": 3}))
    assert main(["plan", "--paper", "--throughputs", str(other)]) == 2
    assert f"{other}: not a benchmark output alma plan reads: missing key" in _one_error_line(capsys)
    cpu = tmp_path / "cpu.json"
    cpu.write_text(json.dumps(BENCHMARKS["vllm_vs_transformers.json"]))
    assert main(["plan", "--paper", "--throughputs", str(cpu)]) == 2
    assert "measured on CPU; plan it with --cpu-nodes" in _one_error_line(capsys)
    assert not (tmp_path / "cache").exists()


def test_unknown_flags_are_one_line_and_exit_2(capsys):
    for argv in (["plan", "--no-such-flag"], ["plan", "--n", "many"], ["plan", "--paper", "--preset", "tiny"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        _one_error_line(capsys)


def test_a_measured_file_changes_the_plan(tmp_path, capsys, tiny_model):
    """The file's model is sized like --model (here the tiny model's folder); its rates replace the defaults."""
    params = llama_params(json.loads((tiny_model / "config.json").read_text()))
    judge = tmp_path / "judge.json"
    judge.write_text(json.dumps({"model": str(tiny_model), "cpus": 1, "in_process_per_s": [2.0, 3.0, 2.5]}))
    argv = ["plan", "--preset", "cpu-align", "--params", str(params), "--json"]
    assert main(argv) == 0
    default = json.loads(capsys.readouterr().out)
    assert main([*argv, "--throughputs", str(judge)]) == 0
    measured = json.loads(capsys.readouterr().out)
    rates = measured["rates"]["policy"]
    # The median 2.5 judgments/s on 1 core, on 2-core nodes, at the benchmark's judgment length.
    assert rates["prefill_tokens_per_s"] == pytest.approx(2.5 * BENCHMARK_JUDGMENT_TOKENS * 2)
    assert rates["decode_tokens_per_s"] == pytest.approx(default["rates"]["policy"]["decode_tokens_per_s"])
    assert str(judge) in rates["source"]
    prefill = [g["device_hours_by_kind"]["prefill"] for plan in (default, measured) for g in plan["groups"]
               if g["name"] == "rounds: scores"]
    assert prefill[1] / prefill[0] == pytest.approx(
        default["rates"]["policy"]["prefill_tokens_per_s"] / rates["prefill_tokens_per_s"])
