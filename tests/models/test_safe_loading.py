import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from vae_restore import VAE, load_model
from vae_restore.errors import CheckpointError
from vae_restore.models import read_metadata, save_model, sha256_file
from vae_restore.models.convert import import_original_checkpoint


def test_import_original_pth_converts_to_a_run_folder(tmp_path):
    torch.manual_seed(0)
    original = VAE().state_dict()
    pth = tmp_path / "vae_model.pth"
    torch.save(original, pth)
    result = subprocess.run(
        [sys.executable, "-m", "vae_restore.cli", "import-original", str(pth), str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    model = load_model(tmp_path / "run")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in original.items())
    assert read_metadata(tmp_path / "run")["stage"] == "imported"
    assert (tmp_path / "run" / "config.json").is_file()
    with pytest.raises(CheckpointError, match="model.safetensors exists: choose a new run folder"):
        import_original_checkpoint(pth, tmp_path / "run")
    assert import_original_checkpoint(pth, tmp_path / "run", overwrite=True) == tmp_path / "run" / "model.safetensors"
    with pytest.raises(CheckpointError, match="is a file; name a run folder"):
        import_original_checkpoint(pth, pth)


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused(tmp_path):
    pth = tmp_path / "evil.pth"
    with open(pth, "wb") as f:
        pickle.dump({"encoder.conv1.weight": RunsCode()}, f)
    with pytest.raises(CheckpointError, match="refused") as refused:
        import_original_checkpoint(pth, tmp_path / "run")
    assert "holds objects other than tensors" in str(refused.value)
    assert "False" not in str(refused.value) and "Re-running" not in str(refused.value)
    assert not (tmp_path / "PWNED").exists() and not os.path.exists("PWNED")
    assert not (tmp_path / "run").exists()


def test_safetensors_with_wrong_shapes_names_the_tensor(tmp_path):
    state = {k: v.clone() for k, v in VAE().state_dict().items()}
    state["encoder.fc21.weight"] = torch.zeros(64, 512)
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"preset": "original"})
    with pytest.raises(CheckpointError, match=r"encoder\.fc21\.weight.*\(64, 512\).*\(128, 512\)"):
        load_model(tmp_path)


def test_pickle_files_are_never_loaded_implicitly(tmp_path):
    torch.save(VAE().state_dict(), tmp_path / "model.bin")
    with pytest.raises(CheckpointError, match="safetensors only"):
        load_model(tmp_path / "model.bin")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", r"not a readable PyTorch checkpoint \(EOFError\)"),
        (b"hello world\n", r"not a readable PyTorch checkpoint \(KeyError"),
        (b"PK\x03\x04", r"not a readable PyTorch checkpoint \(RuntimeError"),
        (b"not a checkpoint\n", "refused: the file holds objects other than tensors"),
    ],
)
def test_import_of_a_file_that_is_not_a_checkpoint_is_a_checkpoint_error(tmp_path, content, reason):
    pth = tmp_path / "vae_model.pth"
    pth.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"vae_model\.pth: {reason}") as error:
        import_original_checkpoint(pth, tmp_path / "run")
    assert "False" not in str(error.value)  # never torch's advice to load with weights_only=False
    assert not (tmp_path / "run").exists()


def test_import_of_a_nested_checkpoint_names_the_key(tmp_path):
    pth = tmp_path / "vae_model.pth"
    torch.save({"model": VAE().state_dict(), "epoch": 3}, pth)
    with pytest.raises(CheckpointError, match="'model' holds OrderedDict"):
        import_original_checkpoint(pth, tmp_path / "run")


@pytest.fixture
def weights_bytes(tmp_path):
    return save_model(VAE(), tmp_path / "good" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("cut", ["truncated", "empty", "text"])
def test_unreadable_safetensors_is_a_checkpoint_error(tmp_path, weights_bytes, cut):
    content = {"truncated": weights_bytes[: len(weights_bytes) // 2], "empty": b"", "text": b"hello\n" * 100}[cut]
    path = tmp_path / "cut.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable safetensors file"):
        load_model(path)
    if cut != "truncated":  # the header of a truncated file is intact, so only its tensors fail
        with pytest.raises(CheckpointError, match="not a readable safetensors file"):
            read_metadata(path)


def test_saved_weights_follow_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        path = save_model(VAE(), tmp_path / "model.safetensors")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_training_checkpoint_folder_is_not_taken_for_a_model(tmp_path):
    """Its model.safetensors is accelerate's raw state: no preset (a residual run would load as `original`)
    and not the EMA."""
    folder = tmp_path / "run" / "checkpoints" / "checkpoint-4"
    folder.mkdir(parents=True)
    save_file(dict(VAE().state_dict()), str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "trainer_state.json").write_text("{}")
    with pytest.raises(CheckpointError, match=f"resumable training checkpoint.*pass the run folder {tmp_path / 'run'}"):
        load_model(folder)
    with pytest.raises(CheckpointError, match="records no preset"):
        load_model(folder / "model.safetensors")


def test_weights_that_differ_from_their_runs_record_or_hold_nan_are_refused(tmp_path):
    run = tmp_path / "run"
    save_model(VAE(), run / "model.safetensors")
    (run / "config.json").write_text(json.dumps({"run": {"weights_sha256": sha256_file(run / "model.safetensors")}}))
    load_model(run)
    state = dict(VAE().state_dict())
    state["decoder.fc2.bias"][7] = float("nan")
    save_file(state, str(run / "model.safetensors"), metadata={"preset": "original"})
    with pytest.raises(CheckpointError, match="does not match the sha256 its run recorded"):
        load_model(run)
    (run / "config.json").unlink()
    with pytest.raises(CheckpointError, match="tensor 'decoder.fc2.bias' holds NaN or Inf"):
        load_model(run)
