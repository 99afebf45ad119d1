from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_data import expected_split, folder_images, random_images, write_image_folder, write_official_format
from hypothesis import given
from hypothesis import strategies as st

from classaware import data as data_mod
from classaware.data import (
    CLASSES,
    Cifar10,
    DataError,
    Provenance,
    balanced_order,
    balanced_split,
    balanced_subset,
    load_canonical,
    read_archive,
    to_float,
)
from classaware.files import save_tensors


# ----------------------------------------------------------------------------- canonical file
@st.composite
def datasets(draw) -> Cifar10:
    n_train, n_test = draw(st.integers(0, 4)), draw(st.integers(0, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    provenance = Provenance(
        *(draw(st.text(max_size=12)) for _ in range(4)), dataset=draw(st.text(min_size=1, max_size=20))
    )
    return Cifar10(
        torch.randint(0, 256, (n_train, 3, 32, 32), generator=g, dtype=torch.uint8),
        torch.randint(0, 10, (n_train,), generator=g),
        torch.randint(0, 256, (n_test, 3, 32, 32), generator=g, dtype=torch.uint8),
        torch.randint(0, 10, (n_test,), generator=g),
        provenance,
    )


@given(datasets())
def test_canonical_file_round_trips_losslessly(d):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sub" / "cifar10.pt"
        d.save(path)
        back = load_canonical(path)
    for name in ("train_x", "train_y", "test_x", "test_y"):
        a, b = getattr(d, name), getattr(back, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert back.provenance == d.provenance
    assert back.dataset == d.provenance.dataset


def test_load_canonical_rejects_a_file_of_another_format(tmp_path):
    other = tmp_path / "other.pt"
    save_tensors({"format": "classaware-checkpoint/1", "train_x": torch.zeros(1)}, other)
    with pytest.raises(DataError, match="other.pt is not a classaware-cifar10/2 file.*run `classaware prepare`"):
        load_canonical(other)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_canonical(garbage)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_canonical(tmp_path / "missing.pt")


def test_load_canonical_rejects_wrong_image_dtype(tmp_path):
    d = Cifar10(
        torch.zeros(2, 3, 32, 32),
        torch.zeros(2, dtype=torch.int64),
        torch.zeros(1, 3, 32, 32, dtype=torch.uint8),
        torch.zeros(1, dtype=torch.int64),
        Provenance("a", "", "", "", "x"),
    )
    d.save(tmp_path / "c.pt")
    with pytest.raises(DataError, match="train split"):
        load_canonical(tmp_path / "c.pt")


# ----------------------------------------------------------------------------- archives
@pytest.fixture(scope="module")
def folder_archive(tmp_path_factory):
    images = folder_images(per_class=2, seed=1)
    path = write_image_folder(tmp_path_factory.mktemp("arch") / "tiny.tar.gz", images, prefix="cifar10/")
    return path, images


def test_read_image_folder_gives_exact_pixels_labels_and_alphabetical_classes(folder_archive):
    path, images = folder_archive
    d = read_archive(path)
    assert list(CLASSES) == sorted(CLASSES)
    for split in ("train", "test"):
        x, y = getattr(d, f"{split}_x"), getattr(d, f"{split}_y")
        want_x, want_y = expected_split(images[split])
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        assert tuple(x.shape) == (20, 3, 32, 32)
        assert torch.equal(y, torch.from_numpy(want_y))
        assert torch.equal(x, torch.from_numpy(want_x))
    md5, sha256 = data_mod.file_digests(path)
    assert d.provenance == Provenance(
        name="tiny.tar.gz",
        md5=md5,
        sha256=sha256,
        format="image-folder",
        dataset="CIFAR-10 (unverified image-folder archive tiny.tar.gz)",
    )


def test_read_archive_accepts_the_expected_md5(folder_archive):
    path, _ = folder_archive
    md5, _ = data_mod.file_digests(path)
    assert len(read_archive(path, expected_md5=md5).train_y) == 20


def test_known_md5_gives_the_known_dataset_name(folder_archive, monkeypatch):
    path, _ = folder_archive
    md5, _ = data_mod.file_digests(path)
    monkeypatch.setitem(data_mod.KNOWN_ARCHIVES, md5, "CIFAR-10 (JPEG q75 copy)")
    assert read_archive(path).dataset == "CIFAR-10 (JPEG q75 copy)"


def test_missing_archive_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="nothere.tar.gz.*does not exist"):
        read_archive(tmp_path / "nothere.tar.gz")


def test_md5_mismatch_is_a_data_error(folder_archive):
    path, _ = folder_archive
    with pytest.raises(DataError, match=f"{path}.*expected 0123456789abcdef"):
        read_archive(path, expected_md5="0123456789abcdef")


def test_truncated_archive_is_a_data_error(folder_archive, tmp_path):
    path, _ = folder_archive
    cut = tmp_path / "cut.tar.gz"
    blob = path.read_bytes()
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=f"{cut}.*truncated"):
        read_archive(cut)


def test_not_a_tar_gz_is_a_data_error(tmp_path):
    path = tmp_path / "plain.tar.gz"
    path.write_bytes(b"hello" * 100)
    with pytest.raises(DataError, match="plain.tar.gz"):
        read_archive(path)


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_wrong_class_set_is_a_data_error(tmp_path, change):
    images = folder_images(per_class=1, seed=2)
    if change == "missing":
        del images["test"]["frog"]
    else:
        images["train"]["unicorn"] = random_images(1, seed=99)
    path = write_image_folder(tmp_path / f"{change}.tar.gz", images)
    with pytest.raises(DataError, match=f"{path}.*classes"):
        read_archive(path)


def test_wrong_image_size_is_a_data_error(tmp_path):
    images = folder_images(per_class=1, seed=3)
    images["train"]["cat"] = random_images(1, seed=5, size=28)
    path = write_image_folder(tmp_path / "small.tar.gz", images)
    with pytest.raises(DataError, match=f"{path}.*train/cat/0000.png is 28x28, expected 32x32"):
        read_archive(path)


def test_unreadable_image_is_a_data_error(tmp_path):
    images = folder_images(per_class=1, seed=4)
    path = write_image_folder(tmp_path / "ok.tar.gz", images)
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(path) as src, tarfile.open(broken, "w:gz") as dst:
        for m in src:
            payload = b"not an image" if m.name == "test/dog/0000.png" else src.extractfile(m).read()
            m.size = len(payload)
            dst.addfile(m, io.BytesIO(payload))
    with pytest.raises(DataError, match=f"{broken}.*test/dog/0000.png is not a readable image"):
        read_archive(broken)


def test_official_format_with_a_foreign_md5_is_a_data_error(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    write_official_format(path)
    with pytest.raises(DataError, match=f"{path}.*official.*expected {data_mod.OFFICIAL_MD5}"):
        read_archive(path)


def test_official_format_layout_is_decoded_as_rgb_planes(tmp_path, monkeypatch):
    """With its md5 accepted, a fake official archive decodes to the rows' R, G, B planes and
    the train set is data_batch_1..5 in order."""
    path = tmp_path / "cifar-10-python.tar.gz"
    batches = write_official_format(path, per_batch=2, seed=7)
    md5, _ = data_mod.file_digests(path)
    monkeypatch.setattr(data_mod, "OFFICIAL_MD5", md5)
    d = read_archive(path)
    rows = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert d.provenance.format == "cifar-10-python"
    assert torch.equal(d.train_x, torch.from_numpy(rows.reshape(-1, 3, 32, 32)))
    assert d.train_x[0, 1, 0, 5].item() == rows[0, 1024 + 5]  # green plane, row 0, column 5
    assert d.train_y.tolist() == labels
    assert torch.equal(d.test_x, torch.from_numpy(batches["test_batch"][0].reshape(-1, 3, 32, 32)))
    assert d.test_y.tolist() == batches["test_batch"][1]


@pytest.mark.slow
@pytest.mark.smoke_run("serial")
def test_real_jpeg_archive_reads_as_full_cifar10(prepared):
    """As the smoke run's ``prepare`` stage read it (conftest.py)."""
    d = load_canonical(prepared)
    assert tuple(d.train_x.shape) == (50000, 3, 32, 32) and tuple(d.test_x.shape) == (10000, 3, 32, 32)
    assert torch.bincount(d.train_y).tolist() == [5000] * 10
    assert torch.bincount(d.test_y).tolist() == [1000] * 10
    assert d.dataset == "CIFAR-10 (JPEG q75 copy)"
    assert d.provenance.format == "image-folder"
    assert d.provenance.md5 == "1305e62a50e4706d19c8747004d1d1a2"


# ----------------------------------------------------------------------------- balanced subsets
label_vectors = st.lists(st.integers(0, 4), min_size=1, max_size=40).map(lambda v: torch.tensor(v, dtype=torch.int64))


def assert_balanced(labels: torch.Tensor, idx: torch.Tensor, pool: torch.Tensor | None = None) -> None:
    """No class is more than one behind another unless it has no image left in ``pool``."""
    k = int(labels.max()) + 1
    counts = torch.bincount(labels[idx], minlength=k)
    totals = torch.bincount(labels if pool is None else labels[pool], minlength=k)
    for a in range(k):
        for b in range(k):
            assert counts[a] >= min(totals[a], counts[b] - 1), (counts.tolist(), totals.tolist())


def test_balanced_order_hand_example():
    # rank 0 of classes 0, 1, 2 (indices 1, 0, 4), then rank 1 of classes 0, 1 (indices 3, 2)
    assert balanced_order(torch.tensor([1, 0, 1, 0, 2])).tolist() == [1, 0, 4, 3, 2]


@given(label_vectors)
def test_balanced_order_is_a_permutation_whose_prefixes_are_balanced(labels):
    order = balanced_order(labels)
    assert sorted(order.tolist()) == list(range(len(labels)))
    for n in range(1, len(labels) + 1):
        assert_balanced(labels, order[:n])
    for c in labels.unique():  # within a class, canonical order is kept
        mine = order[labels[order] == c]
        assert torch.equal(mine, mine.sort().values)


@given(label_vectors, st.integers(-2, 42), st.integers(-2, 42))
def test_balanced_subset_is_sorted_balanced_and_nested(labels, n, m):
    sub = balanced_subset(labels, n)
    assert len(sub) == (n if 0 < n < len(labels) else len(labels))
    assert torch.equal(sub, sub.unique())  # sorted, no repeats
    assert_balanced(labels, sub)
    small, large = sorted((n if n > 0 else len(labels), m if m > 0 else len(labels)))
    assert set(balanced_subset(labels, small).tolist()) <= set(balanced_subset(labels, large).tolist())


@given(st.data())
def test_balanced_split_is_disjoint_balanced_and_holds_out_the_same_set(data):
    labels = data.draw(label_vectors)
    n = len(labels)
    n_second = data.draw(st.integers(0, n - 1))
    n_first = data.draw(st.integers(-1, n - n_second))
    first, second = balanced_split(labels, n_first, n_second)
    assert len(second) == n_second
    assert len(first) == (n_first if n_first > 0 else n - n_second)
    for s in (first, second):
        assert torch.equal(s, s.unique())
    assert not set(first.tolist()) & set(second.tolist())
    assert_balanced(labels, second)
    rest = torch.tensor(sorted(set(range(n)) - set(second.tolist())), dtype=torch.int64)
    assert_balanced(labels, first, pool=rest)
    other = data.draw(st.integers(-1, n - n_second))
    first2, second2 = balanced_split(labels, other, n_second)
    assert torch.equal(second2, second)
    small, large = (first, first2) if len(first) <= len(first2) else (first2, first)
    assert set(small.tolist()) <= set(large.tolist())


def test_balanced_split_holds_out_the_last_image_of_every_class_in_turn():
    # the tail of balanced_order would be [1, 2]: both of class 1
    assert [t.tolist() for t in balanced_split(torch.tensor([0, 1, 1]), 0, 2)] == [[1], [0, 2]]
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    # last of class 0 (4), last of class 1 (5), next-to-last of class 0 (2)
    assert [t.tolist() for t in balanced_split(labels, 2, 3)] == [[0, 1], [2, 4, 5]]


def test_balanced_split_rejects_impossible_sizes():
    labels = torch.arange(10) % 2
    with pytest.raises(ValueError, match="held-out"):
        balanced_split(labels, 0, 10)
    with pytest.raises(ValueError, match="held-out"):
        balanced_split(labels, 0, -1)
    with pytest.raises(ValueError, match="cannot take 7"):
        balanced_split(labels, 7, 4)


# ----------------------------------------------------------------------------- to_float
@given(st.lists(st.integers(0, 255), min_size=1, max_size=50))
def test_to_float_maps_uint8_onto_unit_interval(values):
    x = torch.tensor(values, dtype=torch.uint8)
    y = to_float(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y * 255, x.float(), atol=1e-4)
    assert torch.equal(torch.round(y * 255).to(torch.uint8), x)
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_to_float_endpoints_and_float_passthrough():
    assert to_float(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [0.0, 1.0]
    x = torch.tensor([0.25, -0.5, 1.5])
    assert torch.equal(to_float(x), x)
    assert to_float(x.double()).dtype == torch.float32
