import pytest
import torch

from vae_restore import VAE, load_model
from vae_restore.errors import CheckpointError
from vae_restore.losses import kl_divergence
from vae_restore.models import ORIGINAL, import_original_state_dict, read_metadata, save_model
from vae_restore.models.io import ORIGINAL_PARAMETER_NAMES

EXPECTED_SHAPES = {
    "encoder.conv1.weight": (32, 3, 4, 4),
    "encoder.conv2.weight": (64, 32, 4, 4),
    "encoder.conv3.weight": (128, 64, 4, 4),
    "encoder.conv4.weight": (256, 128, 4, 4),
    "encoder.fc1.weight": (512, 16384),
    "encoder.fc21.weight": (128, 512),
    "encoder.fc22.weight": (128, 512),
    "decoder.fc1.weight": (512, 128),
    "decoder.fc2.weight": (16384, 512),
    "decoder.conv1.weight": (256, 128, 4, 4),
    "decoder.conv2.weight": (128, 64, 4, 4),
    "decoder.conv3.weight": (64, 32, 4, 4),
    "decoder.conv4.weight": (32, 3, 4, 4),
}


@pytest.fixture(scope="module")
def model() -> VAE:
    torch.manual_seed(0)
    return VAE(ORIGINAL).eval()


def test_parameter_count_and_layer_shapes(model):
    assert sum(p.numel() for p in model.parameters()) == 18_371_523
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, shape in EXPECTED_SHAPES.items():
        assert shapes[name] == shape, name
        assert shapes[name.replace("weight", "bias")] == (shape[1] if "decoder.conv" in name else shape[0],)
    assert set(shapes) == set(ORIGINAL_PARAMETER_NAMES)


def test_forward_shapes(model):
    x = torch.rand(2, 3, 128, 128)
    mu, logvar, (s1, s2, s3) = model.encoder(x)
    assert mu.shape == logvar.shape == (2, 128)
    assert (s1.shape, s2.shape, s3.shape) == ((2, 32, 64, 64), (2, 64, 32, 32), (2, 128, 16, 16))
    out = model.restore(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_skip_connections_reach_the_output(model):
    x = torch.rand(1, 3, 128, 128)
    mu, _, skips = model.encoder(x)
    base = model.decoder(mu, skips)
    for i in range(3):
        bumped = list(skips)
        bumped[i] = bumped[i] + 1.0
        assert (model.decoder(mu, tuple(bumped)) - base).abs().max() > 1e-3, f"skip s{i + 1} has no effect"


def test_restore_uses_mu_and_is_deterministic(model):
    x = torch.rand(3, 3, 128, 128)
    a, b = model.restore(x), model.restore(x)
    assert torch.equal(a, b)
    mu, _, skips = model.encoder(x)
    assert torch.allclose(a, torch.sigmoid(model.decoder(mu, skips)))
    model.train()
    try:
        sampled = model(x).restored
    finally:
        model.eval()
    assert not torch.allclose(sampled, a), "training forward must sample z"


def test_kl_matches_closed_form():
    mu, logvar = torch.randn(4, 128, dtype=torch.float64), torch.randn(4, 128, dtype=torch.float64)
    sigma2 = logvar.exp()
    closed = 0.5 * (sigma2 + mu**2 - 1 - torch.log(sigma2)).sum(1)
    assert torch.allclose(kl_divergence(mu, logvar), closed)
    q = torch.distributions.Normal(mu, sigma2.sqrt())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(kl_divergence(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1))


def test_original_state_dict_import(model):
    torch.manual_seed(1)
    original_names = {name: torch.randn(model.state_dict()[name].shape) for name in ORIGINAL_PARAMETER_NAMES}
    imported = import_original_state_dict({f"module.{k}": v for k, v in original_names.items()})
    for name, tensor in original_names.items():
        assert torch.equal(imported.state_dict()[name], tensor)


def test_original_import_names_the_mismatch():
    state = {k: v.clone() for k, v in VAE().state_dict().items()}
    state["decoder.fc2.weight"] = torch.zeros(10, 512)
    with pytest.raises(CheckpointError, match=r"decoder\.fc2\.weight.*\(10, 512\).*\(16384, 512\)"):
        import_original_state_dict(state)


def test_save_and_load_round_trip(tmp_path, model):
    save_model(model, tmp_path / "run" / "model.safetensors", {"stage": "clear"})
    for path in (tmp_path / "run", tmp_path / "run" / "model.safetensors"):
        loaded = load_model(path)
        assert not loaded.training
        for k, v in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v)
    meta = read_metadata(tmp_path / "run")
    assert meta["preset"] == "original" and meta["stage"] == "clear"


def test_load_model_refuses_non_safetensors(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(VAE().state_dict(), path)
    with pytest.raises(CheckpointError, match="safetensors only"):
        load_model(path)
