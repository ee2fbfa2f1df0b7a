"""A training Ray Train gives up on is one line and exit code 1, with the full error in the driver's log."""

from __future__ import annotations

import logging

import pytest

from alma import cli
from alma.config import load_config
from alma.core.errors import StageFailed


def test_a_training_ray_train_gives_up_on_is_a_stage_failure(tmp_path, monkeypatch, caplog):
    import ray.train
    import ray.train.torch

    from alma.jobs import training

    class GivesUp:
        def __init__(self, *args, **kwargs):
            pass

        def fit(self):
            raise ray.train.TrainingFailedError("worker group lost a node\nTraceback (most recent call last): ...")

    monkeypatch.setattr(ray.train.torch, "TorchTrainer", GivesUp)
    train = load_config("tiny").train
    with caplog.at_level(logging.ERROR, logger="alma.train"), pytest.raises(StageFailed) as failed:
        training.fit(lambda config: None, "round-3", {}, tmp_path / "out", train, tmp_path / "ray_train")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(f"train round-3: Ray Train gave up after {train.max_failures} restart(s) "
                              "(worker group lost a node)")
    assert "alma run --resume RUN" in message
    assert "Traceback" in caplog.text, "the whole error goes to the log"


def test_the_cli_reports_a_stage_failure_in_one_line_with_exit_code_1(tmp_path, monkeypatch, capsys):
    import alma.jobs.driver as driver

    def fails(cfg, force=False, finish=None):
        raise StageFailed("train sft-1: Ray Train gave up after 2 restart(s) (lost)")

    monkeypatch.setattr(driver, "run", fails)
    assert cli.main(["run", "--preset", "tiny", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err == "alma: error: train sft-1: Ray Train gave up after 2 restart(s) (lost)\n"


def test_phase_seconds_say_where_a_trainings_wall_time_went():
    from alma.jobs.training import PHASES, phase_seconds

    marks = {"fit_start": 100.0, "ray_train_start": 112.5, "imports": 120.0, "model_load": 121.0,
             "trainer_setup": 122.0, "train": 130.0, "save": 130.5, "ray_train_end": 133.0}
    phases = phase_seconds(marks)
    assert list(phases) == list(PHASES)
    assert phases["ray_train_start"] == 12.5 and phases["imports"] == 7.5 and phases["ray_train_end"] == 2.5
    assert sum(phases.values()) == 33.0, "the phases add up to the wall time"
    # a restarted worker group whose rank 0 left no save mark: the end counts from the last mark
    del marks["save"]
    assert phase_seconds(marks)["ray_train_end"] == 3.0 and "save" not in phase_seconds(marks)
    assert phase_seconds({"ray_train_end": 5.0}) == {}, "no start mark, nothing to say"


def test_training_precision_is_fp32_on_a_cpu_and_autocast_on_a_gpu(monkeypatch):
    import torch

    from alma.jobs.training import mixed_precision, trainer_args

    assert mixed_precision(False) == {"bf16": False, "fp16": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert mixed_precision(True) == {"bf16": False, "fp16": False}, "use_gpu without a GPU: no autocast"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert mixed_precision(True) == {"bf16": True, "fp16": False}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert mixed_precision(True) == {"bf16": False, "fp16": True}, "a GPU without bf16 gets fp16 loss scaling"
    args = trainer_args(load_config("tiny").train, "/tmp/x", 0)
    assert (args["bf16"], args["fp16"], args["use_cpu"]) == (False, False, True)
