"""What a run carries between steps, stages and resumes: accumulated losses, the parent's preset,
the settings a checkpoint was written with, and the validation set's split between processes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

import vae_restore.training.trainer as trainer_module
from benchmarks.in_process import fit_in_process
from vae_restore.config import Config
from vae_restore.errors import CheckpointError, ConfigError, TrainingError
from vae_restore.models import VAE, get_preset, save_model
from vae_restore.training.validation import share

from ..conftest import write_images


def config_for(tmp_path, **train) -> Config:
    data = tmp_path / "images"
    if not data.exists():
        write_images(data, 3, size=(140, 150))
    config = Config()
    config.train = replace(
        config.train,
        **{
            "stage": "clear",
            "output_dir": str(tmp_path / "out"),
            "max_train_steps": 2,
            "logging_steps": 1,
            "validation_steps": 1000,
            "checkpointing_steps": 1000,
            "report_to": "none",
            "train_batch_size": 2,
            **train,
        },
    )
    config.data = replace(config.data, train_data=str(data), val_crops_per_image=1)
    return config.validate()


@pytest.fixture
def nan_at_call(monkeypatch):
    """Make the loss of the given micro-batch (1-based, counted over the process) NaN."""
    calls = {"n": 0, "bad": set()}
    original = trainer_module.vae_loss

    def vae_loss(*args, **kwargs):
        calls["n"] += 1
        terms = original(*args, **kwargs)
        return terms._replace(loss=terms.loss * float("nan")) if calls["n"] in calls["bad"] else terms

    monkeypatch.setattr(trainer_module, "vae_loss", vae_loss)
    return calls["bad"]


def test_a_nan_in_an_early_micro_batch_stops_the_run(tmp_path, nan_at_call):
    torch.set_num_threads(1)
    nan_at_call.add(3)  # the first of step 2's two micro-batches
    with pytest.raises(TrainingError, match="at step 2"):
        fit_in_process(config_for(tmp_path, gradient_accumulation_steps=2))


def test_a_skipped_step_is_counted_across_a_resume(tmp_path, nan_at_call, monkeypatch):
    torch.set_num_threads(1)
    nan_at_call.add(3)
    accumulate = {"gradient_accumulation_steps": 2, "max_bad_steps": 1, "checkpointing_steps": 2}
    first = fit_in_process(config_for(tmp_path, **accumulate))
    assert first.bad_steps == 1 and first.global_step == 2
    assert all(torch.isfinite(p).all() for p in first.weights().parameters())
    state = json.loads((tmp_path / "out" / "clear" / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["bad_steps"] == 1 and state["gradient_accumulation_steps"] == 2

    resumed = fit_in_process(config_for(tmp_path, max_train_steps=3, resume_from_checkpoint="latest", **accumulate))
    assert resumed.global_step == 3 and resumed.bad_steps == 1
    assert json.loads((tmp_path / "out" / "clear" / "config.json").read_text())["run"]["bad_steps"] == 1

    def no_decoding(self):
        raise AssertionError("the data was decoded before the resume was refused")

    monkeypatch.setattr(trainer_module.Trainer, "build_data", no_decoding)
    with pytest.raises(CheckpointError, match="gradient_accumulation_steps 2"):
        fit_in_process(config_for(tmp_path, max_train_steps=3, resume_from_checkpoint="latest", checkpointing_steps=2))


def test_a_divergence_hidden_by_skipped_steps_stops_at_validation_without_weights(tmp_path):
    """Huge weights give finite losses but NaN restorations; the run must not end with a model that restores NaN."""
    torch.set_num_threads(1)
    config = config_for(tmp_path, max_bad_steps=10, max_train_steps=6)
    config.optim = replace(config.optim, learning_rate=1e4)
    with pytest.raises(TrainingError, match="validation at step 6: the model restores to NaN/Inf"):
        fit_in_process(config)
    assert not (tmp_path / "out" / "clear" / "model.safetensors").exists()
    assert not list((tmp_path / "out" / "clear").glob("samples/*.png"))


def test_metrics_of_a_nan_image_are_nan_not_an_error():
    from vae_restore.metrics import compute_metrics

    restored, clear = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    restored[1, 2, 3, 4] = float("nan")
    metrics = compute_metrics(restored, clear)
    assert all(torch.isfinite(v[0]) for v in metrics.values())
    assert all(torch.isnan(v[1]) for v in metrics.values())


def test_a_resume_continues_the_same_run_or_is_refused_naming_what_changed(tmp_path):
    torch.set_num_threads(1)
    fit_in_process(config_for(tmp_path, checkpointing_steps=2))
    with pytest.raises(CheckpointError, match="holds checkpoints of an earlier run .newest: checkpoint-2."):
        fit_in_process(config_for(tmp_path, checkpointing_steps=2))  # its own would be rotated away
    changed = config_for(tmp_path, max_train_steps=3, resume_from_checkpoint="latest")
    changed.optim = replace(changed.optim, adam_beta1=0.5)
    changed.model = replace(changed.model, preset="residual")
    with pytest.raises(CheckpointError, match=r"--preset original \(this run: residual\); --adam_beta1 0.9"):
        fit_in_process(changed)
    with pytest.raises(CheckpointError, match="at step 2, past --max_train_steps 1"):
        fit_in_process(config_for(tmp_path, max_train_steps=1, resume_from_checkpoint="checkpoint-2"))
    resumed = fit_in_process(config_for(tmp_path, max_train_steps=3, resume_from_checkpoint="checkpoint-2"))
    assert resumed.global_step == 3 and resumed.resumed_from.name == "checkpoint-2"


def test_stage_distorted_refuses_a_parent_of_another_preset(tmp_path):
    save_model(VAE(get_preset("residual")), tmp_path / "parent.safetensors")
    config = config_for(tmp_path, stage="distorted", init_from=str(tmp_path / "parent.safetensors"))
    with pytest.raises(ConfigError, match="holds preset 'residual' but this stage trains 'original'"):
        fit_in_process(config)


def test_a_stage_distorted_resume_takes_its_parent_from_the_checkpoint(tmp_path):
    """The weights come from the checkpoint: the parent file may be gone, and its lineage must stay the first one."""
    from vae_restore.models import sha256_file

    torch.set_num_threads(1)
    parent = save_model(VAE(), tmp_path / "parent.safetensors")
    digest = sha256_file(parent)
    fit_in_process(config_for(tmp_path, stage="distorted", init_from=str(parent), checkpointing_steps=2))
    parent.unlink()
    resumed = fit_in_process(
        config_for(
            tmp_path,
            stage="distorted",
            init_from="elsewhere.safetensors",
            max_train_steps=3,
            resume_from_checkpoint="latest",
        )
    )
    assert resumed.global_step == 3
    lineage = json.loads((tmp_path / "out" / "distorted" / "config.json").read_text())["run"]["lineage"]
    assert lineage == {"parent": str(parent.resolve()), "parent_sha256": digest}


@pytest.mark.parametrize("num_processes", [1, 2, 3, 4, 8])
def test_validation_shares_count_every_sample_once(num_processes):
    for n in range(1, 21):
        shares = [share(n, rank, num_processes) for rank in range(num_processes)]
        assert len({len(idx) for idx, _ in shares}) == 1, "gather needs equal shares"
        real = torch.cat([idx[keep] for idx, keep in shares])
        assert sorted(real.tolist()) == list(range(n))


def test_a_config_edited_in_code_is_checked_before_anything_is_written(tmp_path):
    config = config_for(tmp_path)
    config.train.stage = "Distorted"  # after build/validate: `train(config)` must still refuse it
    with pytest.raises(ConfigError, match="stage must be one of"):
        fit_in_process(config)
    assert not (tmp_path / "out").exists()


def test_a_missing_init_from_names_the_flag_not_stage_clear(tmp_path):
    config = config_for(tmp_path, stage="distorted", init_from=str(tmp_path / "nope.safetensors"))
    with pytest.raises(TrainingError) as e:
        fit_in_process(config)
    assert (
        str(e.value) == f"--init_from {tmp_path / 'nope.safetensors'}: {tmp_path / 'nope.safetensors'} does not exist"
    )


@pytest.mark.parametrize("scheduler", ["cosine", "constant"])
def test_extending_a_decaying_schedule_on_resume_is_warned_about(tmp_path, caplog, scheduler):
    config = config_for(tmp_path, checkpointing_steps=2)
    config.optim.lr_scheduler = scheduler
    fit_in_process(config)
    state = json.loads((tmp_path / "out" / "clear" / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["max_train_steps"] == 2
    config.train.max_train_steps, config.train.resume_from_checkpoint = 4, "latest"
    fit_in_process(config)
    warned = "cosine learning-rate schedule was planned over 2 steps and now spans --max_train_steps 4" in caplog.text
    assert warned == (scheduler == "cosine")


def test_a_resume_may_lower_the_learning_rate_the_way_past_a_divergence(tmp_path, caplog):
    """The divergence message advises it: the schedule restarts from the new peak at the resumed step."""
    torch.set_num_threads(1)
    fit_in_process(config_for(tmp_path, checkpointing_steps=2))
    lower = config_for(tmp_path, max_train_steps=3, resume_from_checkpoint="latest")
    lower.optim = replace(lower.optim, learning_rate=1e-4, max_grad_norm=0.5)
    with caplog.at_level("WARNING"):
        resumed = fit_in_process(lower)
    assert resumed.global_step == 3
    assert [group["lr"] for group in resumed.optimizer.param_groups] == [pytest.approx(1e-4)]
    assert "resumed with --learning_rate 0.0001 instead of the checkpoint's 0.001" in caplog.text
    assert "--max_grad_norm 0.5 instead of the checkpoint's 1.0" in caplog.text


def test_resuming_an_earlier_checkpoint_sets_the_later_ones_aside(tmp_path):
    """Left in place, checkpoint-4 would stay the newest: rotation would delete the resumed run's own
    checkpoint-3 at once, and `latest` would go back to the abandoned timeline."""
    torch.set_num_threads(1)
    limit = {"checkpoints_total_limit": 2}
    fit_in_process(config_for(tmp_path, max_train_steps=4, checkpointing_steps=2, **limit))
    resumed = config_for(tmp_path, max_train_steps=3, checkpointing_steps=1, resume_from_checkpoint="checkpoint-2")
    fit_in_process(replace(resumed, train=replace(resumed.train, **limit)))
    run = tmp_path / "out" / "clear"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-3"]
    assert (run / "checkpoints-abandoned" / "checkpoint-4" / "trainer_state.json").is_file()


def test_a_nan_loss_before_a_validation_step_is_named_as_such(tmp_path, nan_at_call):
    """Validation between logging steps checks the losses first: the error names the NaN step, not a
    divergence hidden by skipped steps."""
    torch.set_num_threads(1)
    nan_at_call.add(2)
    with pytest.raises(TrainingError, match="at step 2; last good checkpoint"):
        fit_in_process(config_for(tmp_path, max_train_steps=3, validation_steps=1, logging_steps=10))


def test_config_json_records_the_resolved_parent_and_precision(tmp_path):
    """So that `--config RUN_DIR/config.json` in another --output_dir repeats the run."""
    torch.set_num_threads(1)
    fit_in_process(config_for(tmp_path))
    fit_in_process(config_for(tmp_path, stage="distorted", checkpointing_steps=2))
    saved = json.loads((tmp_path / "out" / "distorted" / "config.json").read_text())["train"]
    assert saved["init_from"] == str((tmp_path / "out" / "clear" / "model.safetensors").resolve())
    assert saved["mixed_precision"] == "no"
    fit_in_process(
        config_for(
            tmp_path, stage="distorted", max_train_steps=3, checkpointing_steps=2, resume_from_checkpoint="latest"
        )
    )
    resumed = json.loads((tmp_path / "out" / "distorted" / "config.json").read_text())["train"]
    assert resumed["resume_from_checkpoint"] is None and resumed["max_train_steps"] == 3


def test_a_finished_run_is_not_overwritten_unless_asked(tmp_path):
    torch.set_num_threads(1)
    fit_in_process(config_for(tmp_path, validation_steps=1))
    run = tmp_path / "out" / "clear"
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="holds the weights of a finished run"):
        fit_in_process(config_for(tmp_path, seed=1))
    with pytest.raises(CheckpointError, match="holds the weights of a finished run and no checkpoint to resume"):
        fit_in_process(config_for(tmp_path, seed=1, resume_from_checkpoint="latest"))
    assert (run / "model.safetensors").read_bytes() == before
    (run / "logs").mkdir()
    (run / "logs" / "events.old").write_text("the earlier run's curves")
    overwrite = {"overwrite_output_dir": True, "resume_from_checkpoint": "latest"}  # nothing to resume: a new run
    fit_in_process(config_for(tmp_path, seed=1, max_train_steps=1, **overwrite))
    assert (run / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000001.png"], "no grid of the old run"
    assert not (run / "logs" / "events.old").exists()
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["overwrite_output_dir"] is False, "--config config.json elsewhere must not delete a run"
