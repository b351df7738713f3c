"""Feature pipelines: steps against independent formulas, presets, the disk cache, ScatNet, the autoencoder."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.decomposition import PCA

from cutbench import CutbenchError, CutbenchWarning
from cutbench.datasets import Dataset, canonical_features, compute_features, load_dataset, resolve_features
from cutbench.datasets import features as features_module
from cutbench.datasets import scatnet
from cutbench.datasets.base import dataset_fingerprint


@pytest.fixture
def digits():
    return load_dataset("digits")


def image_dataset(n=6, seed=0, size=28):
    """Blurry random strokes on a blank 28x28 canvas, like digits, with the meta of an image dataset."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), dtype=np.float32)
    images[:, 6:22, 6:22] = rng.integers(0, 256, size=(n, 16, 16)) / np.float32(255)
    X = images.reshape(n, -1)
    y = np.arange(n) % 2
    meta = {"name": "toy_images", "params": {"seed": seed}, "n": n, "d": size * size, "k": 2,
            "class_counts": np.bincount(y).tolist(), "fingerprint": dataset_fingerprint("toy", {"seed": seed}, X, y),
            "image_shape": (size, size)}
    return Dataset(X=X, y=y, meta=meta)


@pytest.fixture
def one_thread():
    """Tiny tensors: on a shared 2-core machine, torch's thread pool costs more than it saves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- steps


def test_raw_center_and_l2_normalize_follow_their_formulas(digits):
    X = digits.X.astype(np.float64)
    out = compute_features(digits, ["raw"], cache=False)
    np.testing.assert_array_equal(out.X, digits.X)
    np.testing.assert_allclose(compute_features(digits, "center", cache=False).X, X - X.mean(0), atol=1e-6)
    normalised = compute_features(digits, ["l2_normalize"], cache=False).X
    np.testing.assert_allclose(normalised, X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-6), rtol=1e-6)
    assert out.meta["features"] == [{"name": "raw"}] and out.meta["features_cache"] == ["off"]
    assert out.meta["parent_fingerprint"] == digits.meta["fingerprint"] != out.meta["fingerprint"]


def test_centred_pca_matches_scikit_learn(digits):
    out = compute_features(digits, [{"name": "pca", "n_components": 5}], cache=False).X
    reference = PCA(n_components=5, svd_solver="full").fit_transform(digits.X.astype(np.float64))
    signs = np.sign((out * reference).sum(0))
    np.testing.assert_allclose(out, reference * signs, atol=2e-4)


def test_uncentred_pca_projects_on_the_top_right_singular_vectors(digits):
    out = compute_features(digits, [{"name": "pca", "n_components": 4, "center": False}], cache=False).X
    _, singular_values, right = np.linalg.svd(digits.X.astype(np.float64), full_matrices=False)
    reference = digits.X @ right[:4].T
    signs = np.sign((out * reference).sum(0))
    np.testing.assert_allclose(out, reference * signs, atol=2e-4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=0), singular_values[:4], rtol=1e-5)
    # Sign convention: each axis's largest-magnitude loading is positive, so reruns agree exactly.
    components, _, _ = features_module.principal_axes(digits.X, 4, center=False, device=torch.device("cpu"))
    assert (components[np.abs(components).argmax(0), np.arange(4)] > 0).all()


@pytest.mark.parametrize("steps, match", [
    (["pcaa"], "unknown feature step 'pcaa'; available: autoencoder, center, l2_normalize, pca, raw, scatnet"),
    ([{"name": "pca", "k": 3}], r"feature step 'pca' got unknown parameter\(s\) 'k'; accepted: n_components=50, "
                                r"center=True"),
    ([{"name": "pca", "n_components": 2.5}], "feature step 'pca' parameter 'n_components' must be an integer"),
    ([{"name": "pca", "n_components": 65}], r"n_components=65 must lie in 1..64"),
    ([{"n_components": 2}], "a feature step is a name or a mapping"),
    ([], "needs at least one step"),
    (["scatnet"], r"needs greyscale images \(meta\['image_shape'\] = \(h, w\)\); dataset 'digits' has no image_shape"),
])
def test_bad_steps_are_explained(digits, steps, match):
    with pytest.raises(CutbenchError, match=match):
        compute_features(digits, steps, cache=False)


# --------------------------------------------------------------------------- presets


def test_presets_resolve_to_the_reference_pipelines():
    assert resolve_features("raw", "mnist") == [{"name": "raw"}]
    scat = resolve_features({"name": "scatnet", "l2_normalize": True}, "mnist")
    assert scat == [{"name": "scatnet"}, {"name": "pca", "n_components": 500, "center": False},
                    {"name": "l2_normalize"}]
    # The reference removes the mean after PCA for E-MNIST only (research notes §1.1).
    assert [step["name"] for step in resolve_features("scatnet", "emnist_lowercase")] == ["scatnet", "pca", "center"]
    assert [step["name"] for step in resolve_features({"name": "scatnet", "remove_mean": False},
                                                      "emnist_lowercase")] == ["scatnet", "pca"]
    assert resolve_features({"name": "ae", "epochs": 3}, "mnist")[0]["epochs"] == 3
    assert canonical_features("pca") == {"name": "pca", "n_components": 50, "center": True, "l2_normalize": False}


@pytest.mark.parametrize("spec, match", [
    ("sift", r"unknown features 'sift'; accepted: raw, pca, scatnet, ae"),
    ({"name": "scatnet", "pca": 100}, r"features 'scatnet' got unknown parameter\(s\) 'pca'; accepted: "
                                      r"n_components=500, remove_mean=None, l2_normalize=False"),
    ({"name": "raw", "l2_normalize": "yes"}, "parameter 'l2_normalize' must be True or False"),
    ({"name": "scatnet", "remove_mean": 1}, "'remove_mean' must be true, false or null"),
    (["raw"], "features must be a preset name"),
])
def test_bad_presets_are_explained(spec, match):
    with pytest.raises(CutbenchError, match=match):
        resolve_features(spec, "mnist")


# --------------------------------------------------------------------------- cache


def test_cache_hits_misses_and_keys(digits, tmp_path):
    steps = [{"name": "pca", "n_components": 3}, "l2_normalize"]
    first = compute_features(digits, steps, cache=tmp_path)
    assert first.meta["features_cache"] == ["miss", "off"]
    entries = sorted(path.name for path in tmp_path.iterdir())
    assert len(entries) == 2 and entries[0].endswith(".json") and entries[1].endswith(".npy")
    sidecar = json.loads((tmp_path / entries[0]).read_text())
    assert sidecar["steps"] == [{"name": "pca", "n_components": 3, "center": True}]
    assert sidecar["dataset_fingerprint"] == digits.meta["fingerprint"] and sidecar["shape"] == [1797, 3]

    second = compute_features(digits, steps, cache=tmp_path)
    assert second.meta["features_cache"] == ["hit", "off"]
    np.testing.assert_array_equal(second.X, first.X)
    assert second.meta["fingerprint"] == first.meta["fingerprint"]

    changed = compute_features(digits, [{"name": "pca", "n_components": 4}], cache=tmp_path)
    assert changed.meta["features_cache"] == ["miss"] and changed.meta["fingerprint"] != first.meta["fingerprint"]
    other_data = compute_features(load_dataset("two_moons", n=50), [{"name": "pca", "n_components": 2}], cache=tmp_path)
    assert other_data.meta["features_cache"] == ["miss"]
    assert not list(tmp_path.glob("*.part"))


def test_a_cached_later_step_skips_the_earlier_ones(digits, tmp_path, monkeypatch):
    steps = [{"name": "pca", "n_components": 8}, {"name": "pca", "n_components": 2, "center": False}]
    compute_features(digits, steps, cache=tmp_path)
    monkeypatch.setattr(features_module, "pca", None)
    calls = []
    original = features_module._STEPS["pca"]
    monkeypatch.setitem(features_module._STEPS, "pca", original.__class__(
        lambda *args, **kwargs: calls.append(kwargs) or original.function(*args, **kwargs),
        original.defaults, original.cached, original.seeded))
    again = compute_features(digits, steps, cache=tmp_path)
    assert again.meta["features_cache"] == ["skipped", "hit"] and calls == []


@pytest.mark.parametrize("damage", ["garbage array", "other data", "truncated sidecar", "missing array"])
def test_a_damaged_cache_entry_is_rebuilt_not_trusted(digits, tmp_path, damage):
    steps = [{"name": "pca", "n_components": 3}]
    good = compute_features(digits, steps, cache=tmp_path).X
    array_path = next(tmp_path.glob("*.npy"))
    sidecar_path = array_path.with_suffix(".json")
    if damage == "garbage array":
        array_path.write_bytes(b"not an array")
    elif damage == "other data":
        np.save(array_path, good + 1)
    elif damage == "truncated sidecar":
        sidecar_path.write_text(sidecar_path.read_text()[:20])
    else:
        array_path.unlink()
    with pytest.warns(CutbenchWarning, match="rebuilding it"):
        rebuilt = compute_features(digits, steps, cache=tmp_path)
    assert rebuilt.meta["features_cache"] == ["miss"]
    np.testing.assert_array_equal(rebuilt.X, good)
    assert compute_features(digits, steps, cache=tmp_path).meta["features_cache"] == ["hit"]


def test_default_cache_lives_under_data_dir(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("CUTBENCH_DATA", str(tmp_path))
    compute_features(digits, [{"name": "pca", "n_components": 2}])
    assert len(list((tmp_path / "features").glob("*.npy"))) == 1
    with pytest.raises(CutbenchError, match="cache must be True"):
        compute_features(digits, ["raw"], cache=3)


# --------------------------------------------------------------------------- ScatNet


def test_resize_matches_pil_bilinear_on_8_bit_images():
    images = (image_dataset(4).X.reshape(4, 28, 28) * 255).round().astype(np.uint8)
    ours = scatnet.resize_like_pil(torch.from_numpy(images / np.float32(255))).numpy()
    pil = np.stack([np.asarray(Image.fromarray(image, mode="L").resize((32, 32), Image.BILINEAR)) for image in images])
    np.testing.assert_array_equal(np.round(ours * 255), pil)


def test_scatnet_gives_3472_normalised_deterministic_features(monkeypatch):
    data = image_dataset(6)
    out = compute_features(data, ["scatnet"], cache=False, device="cpu").X
    assert out.shape == (6, 3472) and out.dtype == np.float32
    channels = out.reshape(6, 217, 16)
    np.testing.assert_allclose(np.abs(channels).max(axis=2), 1.0, rtol=1e-6)  # per image and channel
    np.testing.assert_array_equal(compute_features(data, ["scatnet"], cache=False, device="cpu").X, out)
    monkeypatch.setattr(scatnet, "BATCH_SIZE", 4)  # two batches: same numbers
    np.testing.assert_allclose(compute_features(data, ["scatnet"], cache=False, device="cpu").X, out, atol=1e-6)
    assert "image_shape" not in compute_features(data, ["scatnet"], cache=False).meta


def test_scatnet_output_does_not_depend_on_worker_processes(monkeypatch):
    data = image_dataset(9)
    monkeypatch.setattr(scatnet, "BATCH_SIZE", 2)
    in_process = compute_features(data, ["scatnet"], cache=False, device="cpu").X
    monkeypatch.setattr(scatnet, "cpu_workers", lambda n_batches: 2)
    np.testing.assert_array_equal(compute_features(data, ["scatnet"], cache=False, device="cpu").X, in_process)


def test_scatnet_order_zero_channel_is_a_positive_low_pass_of_the_image(one_thread):
    data = image_dataset(2)
    coefficients = scatnet._scattering(torch.device("cpu"))(
        scatnet.resize_like_pil(torch.from_numpy(data.X.reshape(2, 28, 28))))
    assert coefficients.shape == (2, 217, 4, 4)
    # Order 0 is the image averaged by a Gaussian: positive, centre brighter than corners here.
    low_pass = coefficients[:, 0]
    assert (low_pass > 0).all() and (low_pass[:, 1:3, 1:3].mean() > low_pass[:, [0, 3]][:, :, [0, 3]].mean())


def test_scatnet_must_come_first():
    with pytest.raises(CutbenchError, match="put 'scatnet' first in the pipeline"):
        compute_features(image_dataset(3), [{"name": "pca", "n_components": 2}, "scatnet"], cache=False)


def test_scatnet_preset_chains_scattering_and_uncentred_pca(tmp_path):
    data = image_dataset(12)
    out = compute_features(data, resolve_features({"name": "scatnet", "n_components": 5}, "mnist"), cache=tmp_path)
    assert out.X.shape == (12, 5) and out.meta["features_cache"] == ["miss", "miss"]
    scattering = compute_features(data, ["scatnet"], cache=tmp_path)
    assert scattering.meta["features_cache"] == ["hit"]
    _, _, right = np.linalg.svd(scattering.X.astype(np.float64), full_matrices=False)
    reference = scattering.X @ right[:5].T
    np.testing.assert_allclose(np.abs(out.X), np.abs(reference), atol=1e-3)


# --------------------------------------------------------------------------- autoencoder


def test_autoencoder_features_are_seeded_and_keyed_by_seed(tmp_path, one_thread):
    data = load_dataset("two_moons", n=64)
    step = {"name": "autoencoder", "hidden_dims": [8], "code_dim": 2, "epochs": 3, "batch_size": 16}
    first = compute_features(data, [step], cache=tmp_path, random_state=1, device="cpu")
    assert first.X.shape == (64, 2) and first.meta["features"][0]["random_state"] == 1
    again = compute_features(data, [step], cache=False, random_state=1, device="cpu")
    np.testing.assert_array_equal(again.X, first.X)
    other = compute_features(data, [{**step, "random_state": 2}], cache=tmp_path, device="cpu")
    assert other.meta["features_cache"] == ["miss"] and not np.allclose(other.X, first.X)
    with pytest.raises(CutbenchError, match="hidden_dims must be a list of positive layer widths"):
        compute_features(data, [{**step, "hidden_dims": "wide"}], cache=False)


def test_autoencoder_loss_decreases(one_thread):
    from cutbench.datasets.autoencoder import train_autoencoder

    X = load_dataset("digits").X[:300]
    _, history = train_autoencoder(X, hidden_dims=(32,), code_dim=4, epochs=15, batch_size=32, random_state=0)
    assert history["loss"][-1] < 0.6 * history["loss"][0]
