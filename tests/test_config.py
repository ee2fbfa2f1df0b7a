"""Config loading: presets, YAML layering, --set overrides, and one-line errors."""

import pytest

from alma.config import PRESETS, AlmaConfig, load_config
from alma.core.errors import ConfigError


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_load(preset):
    cfg = load_config(preset)
    assert cfg.name == preset and cfg.rounds >= 1


def test_every_field_has_help_text():
    def walk(model):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no help text"
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, AlmaConfig.__mro__[1]):
                walk(ann)
    walk(AlmaConfig)


def test_layering_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("rounds: 5\nround:\n  responses_per_prompt: 9\n")
    cfg = load_config("tiny", f, ["rounds=3", "round.sampling.temperature=0.5", "pool.sampling.stop=[]"])
    assert cfg.rounds == 3 and cfg.round.responses_per_prompt == 9
    assert cfg.round.sampling.temperature == 0.5 and cfg.pool.sampling.stop == []
    assert cfg.model.base == "builtin:tiny"


def test_fingerprint_ignores_location_only():
    a = load_config("tiny")
    assert a.fingerprint() == load_config("tiny", overrides=["out_dir=/x", "serve.max_replicas=3"]).fingerprint()
    assert a.fingerprint() != load_config("tiny", overrides=["rounds=3"]).fingerprint()
    # Where the work runs changes no result: placement on a cluster's nodes is not hashed.
    placed = ["serve.resources={gpu_node: 1}", "train.resources={trainer: 1}", "judge_train.resources={trainer: 1}",
              "serve.upscale_delay_s=1"]
    assert a.fingerprint() == load_config("tiny", overrides=placed).fingerprint()


def test_placement_reaches_replicas_and_training_workers():
    from alma.cluster.serve_apps import deployment_options

    cfg = load_config("tiny", overrides=["serve.resources={gpu_node: 0.5}", "serve.upscale_delay_s=2",
                                         "serve.downscale_delay_s=7"])
    options = deployment_options(cfg)
    assert options["ray_actor_options"]["resources"] == {"gpu_node": 0.5}
    assert options["autoscaling_config"]["upscale_delay_s"] == 2
    assert options["autoscaling_config"]["downscale_delay_s"] == 7
    with pytest.raises(ConfigError, match="train.resources"):
        load_config("tiny", overrides=["train.resources=[a]"])


@pytest.mark.parametrize("overrides, fragment", [
    (["bogus=1"], "unknown key 'bogus'"),
    (["round.responses_per_prompt=0"], "'round.responses_per_prompt'"),
    (["rounds=two"], "'rounds'"),
    (["round.checkpoint_mix={sft-1: -1}"], "checkpoint_mix"),
    (["round.checkpoint_mix={sft-9: 1}"], "unknown checkpoints"),
    (["pool.min_chars=500", "pool.max_chars=10"], "min_chars"),
    (["noequals"], "KEY=VALUE"),
])
def test_bad_config_is_one_line(overrides, fragment):
    with pytest.raises(ConfigError) as e:
        load_config("tiny", overrides=overrides)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_bad_yaml_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("rounds: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml:"):
        load_config("tiny", f)
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("nope")


def test_a_renamed_field_is_still_read_and_keeps_the_runs_hash(tmp_path):
    """judge.distill_pairs is now judge.distill_responses (a DPO pair is the other "pair"): a run folder's
    config.yaml written with the old name loads, and hashes as it did, so the run resumes."""
    import yaml

    from alma.config import AlmaConfig, load_config

    new = load_config("tiny", overrides=["judge.distill_responses=7"])
    data = yaml.safe_load(new.model_dump_json())
    data["judge"]["distill_pairs"] = data["judge"].pop("distill_responses")
    old = AlmaConfig.model_validate(data)
    assert old.judge.distill_responses == 7 and old.fingerprint() == new.fingerprint()
    assert old.fingerprint() != load_config("tiny", overrides=["judge.distill_responses=8"]).fingerprint()



def test_a_run_folder_with_the_old_field_name_loads_over_a_preset(tmp_path):
    """The way `alma eval` and `alma judge eval` read a run: its config.yaml layered over the default preset.
    An old config.yaml's judge.distill_pairs replaces the preset's value instead of clashing with it."""
    from alma.config import load_config, load_run_config

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("rounds: 2\njudge:\n  distill_pairs: 7\n")
    assert load_config(None, run / "config.yaml").judge.distill_responses == 7
    assert load_run_config(run).judge.distill_responses == 7
