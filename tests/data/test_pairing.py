"""Finding and pairing files: every layout, auto-detection, forced layouts, unpaired files and empty folders."""

import json
import logging
from pathlib import Path

import pytest

from vae_restore.data.files import ImageRecord, detect_layout, find_records
from vae_restore.errors import DataError

from ..conftest import write_images


def names(records: list[ImageRecord], root: Path) -> list[tuple[str, str | None]]:
    rel = lambda p: None if p is None else p.relative_to(root).as_posix()  # noqa: E731
    return [(rel(r.clear), rel(r.distorted)) for r in records]


def touch_images(folder: Path, names: list[str]) -> None:
    write_images(folder, len(names), size=(16, 16), names=names)


def test_clear_only_folder_is_searched_recursively_and_ignores_hidden_and_other_files(tmp_path):
    touch_images(tmp_path, ["b.png", "a.jpg"])
    touch_images(tmp_path / "sub" / "deeper", ["c.png"])
    touch_images(tmp_path / ".hidden", ["d.png"])
    (tmp_path / "notes.txt").write_text("not an image")
    records = find_records(tmp_path)
    assert detect_layout(tmp_path) == "clear_only"
    assert names(records, tmp_path) == [("a.jpg", None), ("b.png", None), ("sub/deeper/c.png", None)]


def test_same_name_pairs_match_relative_paths(tmp_path):
    touch_images(tmp_path / "clear", ["x.png", "y.png"])
    touch_images(tmp_path / "clear" / "s", ["z.png"])
    touch_images(tmp_path / "distorted", ["x.png", "y.png"])
    touch_images(tmp_path / "distorted" / "s", ["z.png"])
    assert detect_layout(tmp_path) == "same_name"
    assert names(find_records(tmp_path), tmp_path) == [
        ("clear/s/z.png", "distorted/s/z.png"),
        ("clear/x.png", "distorted/x.png"),
        ("clear/y.png", "distorted/y.png"),
    ]


def test_original_naming_pairs_by_the_longest_clear_stem(tmp_path):
    touch_images(tmp_path / "Clear", ["image (1).jpg", "image (12).jpg", "image (2).png"])
    touch_images(
        tmp_path / "Distorted",
        ["image (1)_blur.jpg", "image (12)_blur.jpg", "image (12) (1).jpg", "image (1) (1).jpg", "image (2).jpg"],
    )
    assert detect_layout(tmp_path) == "stem_prefix"
    assert names(find_records(tmp_path), tmp_path) == [
        ("Clear/image (1).jpg", "Distorted/image (1) (1).jpg"),
        ("Clear/image (1).jpg", "Distorted/image (1)_blur.jpg"),
        ("Clear/image (12).jpg", "Distorted/image (12) (1).jpg"),
        ("Clear/image (12).jpg", "Distorted/image (12)_blur.jpg"),
        ("Clear/image (2).png", "Distorted/image (2).jpg"),
    ]


def test_longest_prefix_wins_when_one_clear_stem_prefixes_another(tmp_path):
    touch_images(tmp_path / "clear", ["img1.png", "img12.png"])
    touch_images(tmp_path / "distorted", ["img12_noise.png", "img1_noise.png", "img123.png"])
    with pytest.raises(DataError, match=r"1 file\(s\)") as e:
        find_records(tmp_path)
    assert "distorted/img123.png" in str(e.value)  # img12 is not its clear file: 123 is another number
    pairs = dict((d, c) for c, d in names(find_records(tmp_path, allow_unpaired=True), tmp_path))
    assert pairs == {"distorted/img12_noise.png": "clear/img12.png", "distorted/img1_noise.png": "clear/img1.png"}


def test_a_clear_stem_never_claims_a_longer_number(tmp_path):
    touch_images(tmp_path / "clear", ["img1.png", "img2.png"])
    touch_images(tmp_path / "distorted", ["img1_blur.png", "img10_blur.png", "img2_blur.png"])
    with pytest.raises(DataError) as e:
        find_records(tmp_path)
    assert "distorted/img10_blur.png" in str(e.value) and "img1_blur" not in str(e.value)


def test_same_name_data_missing_a_clear_file_names_it_instead_of_pairing_by_prefix(tmp_path):
    files = [f"img{i}.png" for i in range(1, 11)]
    touch_images(tmp_path / "clear", files[:-1])
    touch_images(tmp_path / "distorted", files)
    assert detect_layout(tmp_path) == "same_name"
    with pytest.raises(DataError, match=r"1 file\(s\).*no partner of the same name") as e:
        find_records(tmp_path)
    assert "distorted/img10.png" in str(e.value)


def test_same_stem_in_sub_folders_pairs_within_the_same_sub_folder(tmp_path):
    touch_images(tmp_path / "clear" / "a", ["p.png"])
    touch_images(tmp_path / "clear" / "b", ["p.png"])
    touch_images(tmp_path / "distorted" / "a", ["p_x.png"])
    touch_images(tmp_path / "distorted" / "b", ["p_y.png"])
    assert names(find_records(tmp_path, "stem_prefix"), tmp_path) == [
        ("clear/a/p.png", "distorted/a/p_x.png"),
        ("clear/b/p.png", "distorted/b/p_y.png"),
    ]


def test_ambiguous_clear_stem_across_sub_folders_is_an_error(tmp_path):
    touch_images(tmp_path / "clear" / "a", ["p.png"])
    touch_images(tmp_path / "clear" / "b", ["p.png"])
    touch_images(tmp_path / "distorted", ["p_x.png"])
    with pytest.raises(DataError, match="p_x.png could belong to several clear files"):
        find_records(tmp_path, "stem_prefix")


def test_unpaired_files_list_the_first_ten_and_the_count(tmp_path):
    touch_images(tmp_path / "clear", ["a.png"])
    touch_images(tmp_path / "distorted", ["a_1.png"] + [f"orphan{i:02d}.png" for i in range(12)])
    with pytest.raises(DataError) as e:
        find_records(tmp_path)
    message = str(e.value)
    assert "12 file(s)" in message
    assert "orphan00.png" in message and "orphan09.png" in message and "orphan10.png" not in message
    assert "and 2 more" in message and "--allow_unpaired" in message


def test_allow_unpaired_warns_with_the_count_and_keeps_the_pairs(tmp_path, caplog):
    touch_images(tmp_path / "clear", ["a.png", "lonely.png"])
    touch_images(tmp_path / "distorted", ["a_1.png", "stray.png"])
    with caplog.at_level(logging.WARNING):
        records = find_records(tmp_path, allow_unpaired=True)
    assert names(records, tmp_path) == [("clear/a.png", "distorted/a_1.png")]
    assert "2 file(s)" in caplog.text


def test_same_name_layout_forced_on_different_names_reports_them(tmp_path):
    touch_images(tmp_path / "clear", ["a.png"])
    touch_images(tmp_path / "distorted", ["a_blur.png"])
    with pytest.raises(DataError, match="have no partner of the same name"):
        find_records(tmp_path, "same_name")


def test_forced_clear_only_ignores_pairing(tmp_path):
    touch_images(tmp_path / "clear", ["a.png"])
    touch_images(tmp_path / "distorted", ["a.png"])
    assert len(find_records(tmp_path, "clear_only")) == 2


def test_csv_manifest_with_header_any_column_order(tmp_path):
    touch_images(tmp_path / "imgs", ["c.png", "d.png"])
    (tmp_path / "pairs.csv").write_text("clear,distorted\nimgs/c.png,imgs/d.png\n\n")
    assert detect_layout(tmp_path) == "manifest"
    assert names(find_records(tmp_path), tmp_path) == [("imgs/c.png", "imgs/d.png")]


def test_csv_manifest_without_header_is_distorted_then_clear(tmp_path):
    touch_images(tmp_path / "imgs", ["c.png", "d.png"])
    manifest = tmp_path / "list.csv"
    manifest.write_text("imgs/d.png,imgs/c.png\n")
    assert names(find_records(manifest), tmp_path) == [("imgs/c.png", "imgs/d.png")]


def test_jsonl_manifest_and_paths_relative_to_it(tmp_path):
    touch_images(tmp_path / "data", ["c.png", "d.png"])
    sub = tmp_path / "lists"
    sub.mkdir()
    line = json.dumps({"distorted": "../data/d.png", "clear": "../data/c.png"})
    (sub / "pairs.jsonl").write_text(line + "\n")
    records = find_records(sub / "pairs.jsonl")
    assert [(r.clear.name, r.distorted.name) for r in records] == [("c.png", "d.png")]


def test_manifest_rows_naming_missing_files_are_reported_with_line_numbers(tmp_path):
    touch_images(tmp_path, ["c.png", "d.png"])
    (tmp_path / "pairs.csv").write_text("distorted,clear\nd.png,c.png\ngone.png,c.png\n")
    with pytest.raises(DataError, match=r"line 3: .*gone.png"):
        find_records(tmp_path)
    assert len(find_records(tmp_path, allow_unpaired=True)) == 1


def test_a_repeated_manifest_row_counts_once(tmp_path, caplog):
    touch_images(tmp_path / "imgs", ["c.png", "d.png", "e.png"])
    (tmp_path / "pairs.csv").write_text("imgs/d.png,imgs/c.png\nimgs/e.png,imgs/c.png\n./imgs/d.png,imgs/c.png\n")
    assert names(find_records(tmp_path), tmp_path) == [("imgs/c.png", "imgs/d.png"), ("imgs/c.png", "imgs/e.png")]
    assert "1 repeated rows left out" in caplog.text


def test_bad_jsonl_line_names_the_line(tmp_path):
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text('{"distorted": "a.png"}\n')
    with pytest.raises(DataError, match="line 1"):
        find_records(manifest)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: p, "no images"),
        (lambda p: (p / "only.txt").write_text("x") and p, "no images"),
    ],
)
def test_missing_empty_or_imageless_folder_names_the_path(tmp_path, make, pattern):
    target = make(tmp_path)
    with pytest.raises(DataError, match=pattern) as e:
        find_records(target)
    assert str(tmp_path) in str(e.value)


def test_empty_distorted_folder_names_it(tmp_path):
    touch_images(tmp_path / "clear", ["a.png"])
    (tmp_path / "distorted").mkdir()
    with pytest.raises(DataError, match="distorted"):
        find_records(tmp_path)


def test_unknown_layout_is_refused(tmp_path):
    touch_images(tmp_path, ["a.png"])
    with pytest.raises(DataError, match="data_layout must be one of"):
        find_records(tmp_path, "zip")
