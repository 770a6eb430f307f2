"""Drawing damage marks: splats land where they should, exactly and in any order; cracks are thin walls."""

import torch

from vae_restore.distortions import marks


def test_splat_spreads_a_point_bilinearly():
    out = marks.splat(
        torch.tensor([[0.8]]), torch.tensor([[2.25]]), torch.tensor([[3.5]]), torch.tensor([[1]]), 2, 6, 6
    )
    assert out.shape == (1, 2, 6, 6) and float(out[0, 0].abs().sum()) == 0
    expected = {(2, 3): 0.75 * 0.5, (2, 4): 0.75 * 0.5, (3, 3): 0.25 * 0.5, (3, 4): 0.25 * 0.5}
    for (y, x), weight in expected.items():
        assert abs(float(out[0, 1, y, x]) - 0.8 * weight) < 1e-4
    assert abs(float(out.sum()) - 0.8) < 1e-4


def test_canvas_sums_are_the_same_in_any_order_and_drop_pixels_outside():
    g = torch.Generator().manual_seed(0)
    values = torch.rand(2, 500, generator=g) * 0.01
    ys, xs = torch.randint(-2, 10, (2, 500), generator=g), torch.randint(-2, 10, (2, 500), generator=g)
    layer = torch.zeros_like(ys)
    a, b = marks.Canvas(2, 1, 8, 8, "cpu"), marks.Canvas(2, 1, 8, 8, "cpu")
    a.add(values, ys, xs, layer)
    order = torch.randperm(500, generator=g)
    b.add(values[:, order], ys[:, order], xs[:, order], layer)
    assert torch.equal(a.coverage(), b.coverage())
    inside = (ys >= 0) & (ys < 8) & (xs >= 0) & (xs < 8)
    assert torch.allclose(a.coverage().sum((1, 2, 3)), (values * inside).sum(1), atol=1e-3)


def test_a_straight_stroke_covers_a_thin_line_of_its_length():
    x = torch.zeros(1, 3, 64, 64)
    s = marks.Strokes(
        cy=torch.tensor([[32.0]]),
        cx=torch.tensor([[32.0]]),
        angle=torch.tensor([[0.0]]),
        half=torch.tensor([[20.0]]),
        width=torch.tensor([[1.0]]),
        sag=torch.tensor([[0.0]]),
        wobble=torch.tensor([[0.0]]),
        opacity=torch.tensor([[1.0]]),
    )
    cover = marks.draw_strokes(x, s, torch.zeros(1, 1, dtype=torch.long), 1, 20.0, torch.Generator().manual_seed(0))
    rows = cover[0, 0].sum(1)
    assert int(rows.argmax()) == 32 and float(rows[32]) > 0.8 * float(rows.sum())  # one row, the stroke's
    cols = (cover[0, 0] > 0).any(0).nonzero().flatten()
    assert 10 <= int(cols.min()) <= 14 and 50 <= int(cols.max()) <= 54  # 40 px long around the centre


def test_crack_distance_is_zero_on_walls_and_grows_inside_cells():
    x = torch.zeros(4, 3, 96, 96)
    d = marks.crack_distance(x, torch.full((4,), 16.0), 16.0, torch.Generator().manual_seed(1))
    assert d.shape == (4, 1, 96, 96) and float(d.min()) >= 0
    near_wall = (d < 0.7).float().mean()
    assert 0.03 < float(near_wall) < 0.25  # thin walls, not areas
    assert float(d.max()) > 4  # cell interiors are several pixels from any wall
