import os
import pickle
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from vae_restore import VAE, load_model
from vae_restore.errors import CheckpointError
from vae_restore.models import read_metadata
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


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused(tmp_path):
    pth = tmp_path / "evil.pth"
    with open(pth, "wb") as f:
        pickle.dump({"encoder.conv1.weight": RunsCode()}, f)
    with pytest.raises(CheckpointError, match="refused"):
        import_original_checkpoint(pth, tmp_path / "run")
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
