"""Distortions: each does what it says (checked against references), stays in range and is seeded."""

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from vae_restore.config import DistortionConfig
from vae_restore.distortions import (
    DistortionMixture,
    aged,
    artwork,
    blur,
    distortions_from_config,
    jpeg,
    jpeg_codec,
    noise,
    resample,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)


def smooth_batch(n: int = 6, size: int = 64, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    """Smooth random colour images in [0.1, 0.9] (natural-image-like, JPEG friendly)."""
    g = gen(seed, device)
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=g, device=device)
    x = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (0.1 + 0.8 * x).clamp(0, 1)


ALL = list(distortions_from_config(DistortionConfig(), (5.0, 50.0)).items()) + [("aged", aged)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, fn", ALL, ids=[n for n, _ in ALL])
def test_every_distortion_is_seeded_in_range_and_leaves_its_input_alone(name, fn, device):
    x = smooth_batch(device=device)
    before = x.clone()
    a, b, c = fn(x, gen(1, device)), fn(x, gen(1, device)), fn(x, gen(2, device))
    assert torch.equal(x, before)
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b), "same seed must give the same result"
    assert not torch.equal(a, c), "another seed must give another result"
    assert float((a - x).abs().amax((1, 2, 3)).min()) > 0.003, "the distortion must change every image"


def test_gaussian_noise_has_the_drawn_sigma():
    x = torch.full((4, 3, 128, 128), 0.5)
    y = noise.gaussian_noise(x, (25.0, 25.0), gen())
    assert abs(float((y - x).std()) * 255 - 25.0) < 0.5


def test_poisson_noise_variance_follows_brightness_over_peak():
    x = torch.cat([torch.full((1, 3, 128, 128), 0.1), torch.full((1, 3, 128, 128), 0.5)])
    peak = 100.0  # 50 photons at most on average: clipping at white stays negligible
    y = noise.poisson_noise(x, (peak, peak), gen())
    for i, level in enumerate((0.1, 0.5)):
        assert abs(float(y[i].mean()) - level) < 0.01
        assert abs(float(y[i].var()) / (level / peak) - 1) < 0.08  # Poisson: variance = mean (in photons)
    assert torch.allclose(y * peak, (y * peak).round(), atol=1e-4)  # whole photon counts


def test_gaussian_blur_matches_scipy():
    x = torch.rand(2, 3, 40, 40, generator=gen())
    sigma = 1.7
    y = blur.gaussian_blur(x, (sigma, sigma), gen())
    radius = math.ceil(3 * sigma)
    for i in range(2):
        for ch in range(3):
            ref = ndimage.gaussian_filter(x[i, ch].double().numpy(), sigma, mode="mirror", truncate=radius / sigma)
            assert np.abs(y[i, ch].numpy() - ref).max() < 1e-5


def test_horizontal_motion_blur_keeps_horizontal_stripes_and_smears_vertical_ones():
    kernel = blur.motion_kernels(torch.tensor([9.0]), torch.tensor([0.0]), 11)[0]
    assert abs(float(kernel.sum()) - 1) < 1e-6 and float(kernel[5].sum()) > 0.99  # all weight on the middle row
    rows = torch.arange(32).float().view(1, 1, 32, 1).expand(1, 3, 32, 32) % 2
    cols = rows.transpose(2, 3)
    from vae_restore.distortions.sampling import grouped_conv

    assert torch.allclose(grouped_conv(rows, kernel[None]), rows, atol=1e-5)
    assert float(grouped_conv(cols, kernel[None])[..., 8:-8].std()) < 0.15 * float(cols.std())  # 1/9 left


def test_jpeg_is_a_real_round_trip_at_the_drawn_quality():
    x = smooth_batch(4)
    y = jpeg.jpeg_compression(x, (10, 95), gen(3))
    qualities = torch.randint(10, 96, (4,), generator=gen(3)).tolist()
    for i, q in enumerate(qualities):
        pixels = (x[i] * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=q)
        expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        assert np.array_equal((y[i] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("quality", [1, 10, 37, 50, 83, 100])
def test_gpu_jpeg_codec_quantises_with_libjpegs_tables(quality):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, "JPEG", quality=quality)
    luma, chroma = (list(t) for t in Image.open(buffer).quantization.values())
    got = jpeg_codec.quant_tables(torch.tensor([quality]))
    assert [got[0][0].flatten().int().tolist(), got[1][0].flatten().int().tolist()] == [luma, chroma]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [(128, 128), (75, 100)])
def test_gpu_jpeg_codec_does_what_pillow_does_to_photos(size, device):
    """The GPU path (torch, no entropy coding) against libjpeg: the same damage, to a fraction of a level."""
    from skimage import data

    h, w = size
    photos = [data.astronaut()[100 : 100 + h, 150 : 150 + w], data.coffee()[50 : 50 + h, 200 : 200 + w]]
    images = torch.from_numpy(np.stack(photos * 3)).permute(0, 3, 1, 2).contiguous()
    qualities = [10, 20, 50, 75, 90, 95]
    expected = jpeg.jpeg_roundtrip_cpu(images, qualities).float()
    got = jpeg_codec.jpeg_roundtrip(images.to(device), torch.tensor(qualities, device=device)).cpu()
    assert got.shape == expected.shape
    for i, q in enumerate(qualities):
        assert float((got[i] - expected[i]).abs().mean()) < 0.4, f"quality {q}"
        damage = [float((y - images[i].float()).square().mean()) for y in (got[i], expected[i])]
        assert abs(damage[0] / damage[1] - 1) < 0.03, f"quality {q}: MSE {damage[0]:.2f} vs libjpeg's {damage[1]:.2f}"


def test_gpu_jpeg_codec_needs_no_host_synchronisation():
    from torch._subclasses.fake_tensor import FakeTensorMode

    images = jpeg.quantise(smooth_batch(3))
    jpeg_codec.jpeg_roundtrip(images, torch.tensor([50, 50, 50]))  # the per-device constants, made for real
    with FakeTensorMode(allow_non_fake_inputs=True):
        qualities = torch.randint(10, 96, (3,), generator=gen())
        out = jpeg_codec.jpeg_roundtrip(images, qualities)
    assert out.shape == images.shape


def test_lower_jpeg_quality_loses_more():
    x = smooth_batch(4)
    errors = [float((jpeg.jpeg_compression(x, (q, q), gen()) - x).abs().mean()) for q in (10, 50, 95)]
    assert errors[0] > errors[1] > errors[2]


def test_down_up_keeps_smooth_content_and_loses_fine_detail():
    coarse = torch.rand(2, 3, 4, 4, generator=gen())
    smooth = torch.nn.functional.interpolate(coarse, size=(96, 96), mode="bicubic", align_corners=False).clamp(0, 1)
    fine = torch.rand(2, 3, 96, 96, generator=gen())
    assert float((resample.down_up(smooth, (3.0, 3.0), gen()) - smooth).abs()[..., 8:-8, 8:-8].max()) < 0.04
    detail = lambda t: float((t[..., 1:] - t[..., :-1]).abs().mean())  # noqa: E731
    assert detail(resample.down_up(fine, (3.0, 3.0), gen())) < 0.3 * detail(fine)


def test_down_up_gives_each_image_its_own_factor():
    x = smooth_batch(1, 96).expand(64, -1, -1, -1).contiguous()  # detail at an 8-pixel scale
    loss = (resample.down_up(x, (1.5, 4.0), gen()) - x).abs().mean((1, 2, 3))
    assert float(loss.max()) > 4 * float(loss.min())


def test_fading_lowers_contrast_and_lifts_darks():
    x = smooth_batch()
    y = artwork.fading(x, (0.4, 0.4), gen())
    assert float(y.std()) < 0.8 * float(x.std())
    assert float(y.min()) > float(x.min())


def test_yellowing_absorbs_blue_most():
    x = torch.full((2, 3, 32, 32), 0.8)
    y = artwork.yellowing(x, (0.8, 0.8), gen())
    r, g, b = (float(y[:, c].mean()) for c in range(3))
    assert b < g < r <= 0.8


def test_color_cast_tints_without_changing_mean_brightness_much():
    x = torch.full((16, 3, 16, 16), 0.5)
    y = artwork.color_cast(x, (0.1, 0.1), gen())
    means = y.mean((2, 3))
    assert float((means - 0.5).abs().max()) > 0.02  # channels moved
    assert float((means.mean(1) - 0.5).abs().max()) < 1e-4  # gains sum to three: brightness kept


def test_scratches_are_thin_light_and_dark_strokes():
    x = torch.full((32, 3, 128, 128), 0.5)
    y = artwork.scratches(x, (3, 3), gen())
    changed = (y - x).abs().amax(1) > 0.05
    share = changed.float().mean((1, 2))
    assert float(share.max()) < 0.15 and float(share.min()) > 0.002  # thin lines, never a wash over the image
    assert bool((y > 0.6).any()) and bool((y < 0.4).any())  # light and dark ones


def test_dust_spots_cover_little_and_scale_with_density():
    x = torch.full((8, 3, 128, 128), 0.5)
    coverage = [float(((artwork.dust(x, (d, d), gen()) - x).abs().amax(1) > 0.1).float().mean()) for d in (10, 80)]
    assert 0 < coverage[0] < coverage[1] < 0.1


def test_cracks_only_darken_and_form_thin_lines():
    x = smooth_batch(8, 128)
    y = artwork.cracks(x, (12.0, 20.0), gen())
    assert bool((y <= x + 1e-6).all())
    share = float(((x - y).amax(1) > 0.05).float().mean())
    assert 0.01 < share < 0.25


def test_aging_fades_yellows_scratches_and_dusts_every_image_it_draws():
    config = DistortionConfig(p_gaussian_noise=0.0, p_aging=1.0)
    mixture = DistortionMixture.from_config(config, (5.0, 5.0))
    assert mixture.names == ["aging"]
    x = torch.full((8, 3, 128, 128), 0.5)
    y = mixture(x, gen())
    mean = y.mean((2, 3))
    assert bool((mean[:, 2] < mean[:, 0] - 0.02).all())  # blue absorbed by varnish, under the faded ground
    dark = (y.amax(1) < 0.2).flatten(1).any(1)  # dust specks and dark scratches, never left by tones alone
    assert bool(dark.all())
    alone = artwork.yellowing(artwork.fading(x, config.fade_amount, gen()), config.yellowing_strength, gen())
    assert not bool((alone.amax(1) < 0.2).any())


def test_mixture_honours_probabilities_and_gives_every_image_at_least_one():
    config = DistortionConfig(p_gaussian_noise=0.5, p_jpeg=0.0, p_dust=0.25)
    mixture = DistortionMixture.from_config(config, (10.0, 10.0))
    assert mixture.names == ["dust", "gaussian_noise"]
    hits = mixture.draw(20000, gen(), torch.device("cpu"))
    assert bool(hits.any(1).all())
    rates = hits.float().mean(0)
    none_drawn = 0.5 * 0.75  # those images get one distortion chosen in proportion to the probabilities
    expected = torch.tensor([0.25 + none_drawn / 3, 0.5 + none_drawn * 2 / 3])
    assert torch.allclose(rates, expected, atol=0.015)


def test_mixture_applies_only_the_drawn_distortions_to_each_image():
    config = DistortionConfig(p_gaussian_noise=0.5, p_fading=0.5)
    mixture = DistortionMixture.from_config(config, (40.0, 40.0))
    x = smooth_batch(32)
    y = mixture(x, gen(4))
    hits = mixture.draw(32, gen(4), torch.device("cpu"))  # the same first draws as inside the call
    faded, noisy = hits[:, mixture.names.index("fading")], hits[:, mixture.names.index("gaussian_noise")]
    assert 0 < int(faded.sum()) < 32 and 0 < int(noisy.sum()) < 32
    roughness = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean((1, 2, 3))  # noqa: E731
    assert torch.equal(roughness(y) > 2 * roughness(x), noisy)
    only_noise = noisy & ~faded
    assert torch.allclose(y[only_noise].mean((1, 2, 3)), x[only_noise].mean((1, 2, 3)), atol=0.01)
    assert bool((y.std((1, 2, 3)) < x.std((1, 2, 3)))[faded & ~noisy].all())


def test_mixture_is_seeded_and_does_not_modify_its_input():
    config = DistortionConfig(p_gaussian_noise=0.5, p_jpeg=0.5, p_scratches=0.5, p_resample=0.5)
    mixture = DistortionMixture.from_config(config, (5.0, 30.0))
    x = smooth_batch(8)
    before = x.clone()
    a, b = mixture(x, gen(7)), mixture(x, gen(7))
    assert torch.equal(a, b) and torch.equal(x, before)


def test_mixture_of_half_precision_pixels_distorts_in_float32():
    config = DistortionConfig(p_fading=0.5, p_resample=0.5, p_dust=0.5, p_scratches=0.5, p_gaussian_noise=0.5)
    mixture = DistortionMixture.from_config(config, (5.0, 30.0))
    x = smooth_batch(8).to(torch.bfloat16)
    y = mixture(x, gen(7))
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    assert torch.equal(y, mixture(x.float(), gen(7)).to(torch.bfloat16))


def test_a_distortion_every_image_gets_is_applied_to_the_whole_batch_without_drawing():
    x = smooth_batch(8)
    alone = DistortionMixture.from_config(DistortionConfig(), (5.0, 50.0))  # the default stage: Gaussian noise only
    assert alone.certain == [True]
    assert torch.equal(alone(x, gen(3)), noise.gaussian_noise(x, (5.0, 50.0), gen(3)))
    both = DistortionMixture.from_config(DistortionConfig(p_gaussian_noise=1.0, p_fading=1.0), (5.0, 50.0))
    g = gen(3)  # one generator through both, in the mixture's order
    expected = noise.gaussian_noise(artwork.fading(x, DistortionConfig().fade_amount, g), (5.0, 50.0), g)
    assert both.certain == [True, True] and torch.equal(both(x, gen(3)), expected)
    some = DistortionMixture.from_config(DistortionConfig(p_gaussian_noise=1.0, p_fading=0.5), (5.0, 50.0))
    assert some.certain == [False, True]


def test_crops_draws_and_a_certain_mixture_need_no_host_synchronisation():
    """Data-dependent shapes (nonzero, boolean-mask indexing, .item()) would make a CUDA step wait for the GPU;
    FakeTensorMode refuses exactly those, so it shows the default stage's data path has none."""
    from torch._subclasses.fake_tensor import DynamicOutputShapeException, FakeTensorMode

    from vae_restore.data.pixel_bank import PixelBank
    from vae_restore.data.sampler import CropSampler

    rng = np.random.default_rng(0)
    bank = PixelBank([rng.integers(0, 256, (40 + 9 * i, 50, 3), dtype=np.uint8) for i in range(3)], 32)
    uncertain = DistortionMixture.from_config(DistortionConfig(p_gaussian_noise=0.5, p_dust=0.25), (5.0, 50.0))
    certain = DistortionMixture.from_config(DistortionConfig(), (5.0, 50.0))
    with FakeTensorMode(allow_non_fake_inputs=True):
        _, x = CropSampler(bank, 32, gen()).sample(4)
        uncertain.draw(4, gen(), x.device)
        certain(x, gen())
        with pytest.raises(DynamicOutputShapeException):
            uncertain(x, gen())  # choosing sub-batches does synchronise: the check would catch it


def test_mixture_copies_no_constants_from_the_host_after_its_first_batch(monkeypatch):
    """`torch.tensor(..., device=cuda)` waits for the GPU queue: colours, luma weights, probabilities are made once."""
    every = {f"p_{name}": 0.5 for name, _ in distortions_from_config(DistortionConfig(), (5.0, 50.0)).items()}
    mixture = DistortionMixture.from_config(DistortionConfig(**every), (5.0, 50.0))
    x = smooth_batch(8, 32)
    mixture(x, gen(0))
    made = []
    real = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or real(*a, **k))
    mixture(x, gen(1))
    assert made == []


def test_config_rejects_bad_probabilities_and_ranges():
    from vae_restore.config_io import build_config
    from vae_restore.errors import ConfigError

    with pytest.raises(ConfigError, match="p_jpeg must be a probability"):
        build_config(overrides={"p_jpeg": 1.5})
    with pytest.raises(ConfigError, match="blur_sigma must be"):
        build_config(overrides={"blur_sigma": "3,1"})
    with pytest.raises(ConfigError, match="at least one distortion"):
        build_config(overrides={"p_gaussian_noise": 0})
    config = build_config(overrides={"distortions.jpeg_quality": "20,40", "p_jpeg": "0.3"})
    assert config.distortions.jpeg_quality == (20, 40) and config.distortions.p_jpeg == 0.3


@pytest.mark.parametrize("name, fn", ALL, ids=[n for n, _ in ALL])
def test_every_distortion_handles_images_smaller_than_its_kernels(name, fn):
    x = smooth_batch(2, 8)
    y = fn(x, gen())
    assert y.shape == x.shape and bool(torch.isfinite(y).all())
