"""The method contract: scikit-learn's estimator checks and one study cell, over every registered method.

Both tests iterate over the registry, so a method is covered the moment it is registered. Its tiny
configuration (its ``check_params``) only shrinks budgets and the affinity's ``s`` to the checks' small data sets
(10 to 100 points); a method without an entry runs with its defaults.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import check_methods_subset_invariance, parametrize_with_checks

from cutbench.methods import get_method, list_methods
from cutbench.runner import DatasetCache, run_cell
from cutbench.study import expand_study

pytestmark = pytest.mark.usefixtures("one_thread")

# Each method declares its tiny configuration (check_params: budgets and the affinity's s cut to the checks'
# 10 to 100 points) and the checks it fails by its nature (expected_failed_checks, each with its reason).
TINY = {name: get_method(name).check_params for name in list_methods()}
EXPECTED_FAILURES = {name: get_method(name).expected_failed_checks for name in list_methods()}


def tiny(name):
    return get_method(name)(**TINY.get(name, {}), device="cpu", random_state=0)


@parametrize_with_checks([tiny(name) for name in list_methods()],
                         expected_failed_checks=lambda estimator: EXPECTED_FAILURES.get(estimator.name, {}),
                         xfail_strict=True)  # an expected failure that starts passing must leave the list
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a collapse warning on a check's random data
        check(estimator)


# The defaults: every parameter as a user gets it, only the training budget cut to the checks' tiny data
# (10 to 100 points). A batch_size above n is clipped with a warning, so the mini-batch methods pass.
BUDGET = {"neuncut": {"epochs": 5}, "neurcut": {"epochs": 5}, "spectralnet": {"epochs": 2, "steps_per_epoch": 2},
          "specnet2": {"epochs": 2}, "cnc": {"epochs": 2, "steps_per_epoch": 2}}
_TEN_POINTS = ("the check fits 10 points, and the default kNN affinity keeps n_neighbors=10 neighbours per point, "
               "which 10 points cannot give (at most 9 each): refused with a message naming n_neighbors, as it must be")
_KNN_ON_TEN_POINTS = {"check_estimators_nan_inf": _TEN_POINTS + " (NaN and inf themselves are refused first)",
                      "check_fit2d_1feature": _TEN_POINTS + " (one feature is accepted)"}
DEFAULT_EXPECTED_FAILURES = {
    "ncut": _KNN_ON_TEN_POINTS,
    "specnet2": {**_KNN_ON_TEN_POINTS, **EXPECTED_FAILURES["specnet2"]},
    "spectralnet": {**_KNN_ON_TEN_POINTS, **EXPECTED_FAILURES["spectralnet"]},
}


def at_defaults(name):
    return get_method(name)(**BUDGET.get(name, {}), device="cpu", random_state=0)


@parametrize_with_checks([at_defaults(name) for name in list_methods()],
                         expected_failed_checks=lambda estimator: DEFAULT_EXPECTED_FAILURES.get(estimator.name, {}),
                         xfail_strict=True)
def test_scikit_learn_estimator_checks_at_default_parameters(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. the clipped batch_size, a collapse on random data
        check(estimator)


def test_default_parameter_failures_are_the_documented_ones():
    for name, failures in DEFAULT_EXPECTED_FAILURES.items():
        assert set(failures) - set(EXPECTED_FAILURES.get(name, {})) <= set(_KNN_ON_TEN_POINTS), name
        assert set(BUDGET.get(name, {})) <= {"epochs", "steps_per_epoch"}  # only the budget is cut


def test_expected_failures_are_few_and_justified():
    for name, failures in EXPECTED_FAILURES.items():
        assert name in list_methods() and len(failures) <= 4
        assert all(len(reason) > 40 for reason in failures.values())


def test_specnet2_transform_is_subset_invariant_in_float64():
    estimator = get_method("specnet2")(**TINY["specnet2"], dtype="float64", device="cpu", random_state=0)
    check_methods_subset_invariance("SpecNet2", estimator)


def test_every_registered_method_runs_a_study_cell():
    raw = {"name": "contract", "datasets": [{"name": "blobs", "params": {"n": 60, "n_clusters": 3, "d": 4}}],
           "methods": [{"name": name, "params": TINY.get(name, {})} for name in list_methods()],
           "seeds": [0], "device": "cpu", "timing": {"warmup": 0, "repeats": 1}}
    study = expand_study(raw)
    assert sorted(cell.method for cell in study.cells) == list_methods()
    datasets = DatasetCache()
    for cell in study.cells:
        record, labels = run_cell(cell, datasets, "contract")
        assert record["status"] == "ok", (cell.method, record.get("traceback"))
        assert labels.shape == (60,) and labels.dtype == np.int64
        assert set(record["metrics"]) == {"acc", "nmi", "ari", "nca", "ncut_value", "rcut_value"}
        assert record["timings"]["fit"]["seconds"] > 0
        assert ("predict" in record["timings"]) == get_method(cell.method).capabilities.out_of_sample


LEARNED = {
    "siamese": {"kind": "siamese", "hidden_dims": [16], "embedding_dim": 3, "epochs": 2,
                "kernel": {"n_neighbors": 3, "self_loops": True}},
    "self_expressive": {"kind": "self_expressive", "hidden_dims": [16], "embedding_dim": 16, "steps": 5,
                        "batch_size": 20},
}
# What a method needs to take a kind: SpectralNet has no heat kernel to scale under SENet, and SpecNet2's
# neighbour variant needs self-loops, which SENet's graph has not.
NEEDS = {("spectralnet", "self_expressive"): {"scale": "affinity"}, ("specnet2", "self_expressive"): {"variant": "local"}}


@pytest.mark.parametrize("kind", sorted(LEARNED))
def test_every_method_with_an_affinity_runs_a_cell_with_a_learned_one(kind):
    # every built-in method with an affinity takes every learned kind (through prepare_affinity)
    takers = [name for name in list_methods() if get_method(name).capabilities.affinity_kinds]
    assert all(kind in get_method(name).capabilities.affinity_kinds for name in takers) and len(takers) >= 6
    raw = {"name": "contract", "datasets": [{"name": "blobs", "params": {"n": 60, "n_clusters": 3, "d": 4}}],
           "methods": [{"name": name, "params": {**TINY.get(name, {}), **NEEDS.get((name, kind), {}),
                                                 "affinity": LEARNED[kind]}} for name in takers],
           "seeds": [0], "device": "cpu", "timing": {"warmup": 0, "repeats": 1}}
    datasets = DatasetCache()
    for cell in expand_study(raw).cells:
        record, _ = run_cell(cell, datasets, "contract")
        assert record["status"] == "ok", (cell.method, record.get("traceback"))
        assert record["timings"]["affinity"]["seconds"] > 0  # the training, timed as its own stage


def test_a_method_says_what_it_needs_to_take_the_self_expressive_affinity():
    from cutbench import CutbenchError
    from cutbench.methods import SpectralNet

    X = torch.randn(60, 4, generator=torch.Generator().manual_seed(0)).numpy()
    with pytest.raises(CutbenchError, match="scale='global_median' sets the bandwidth of a heat kernel, but the "
                                            "SelfExpressiveAffinity affinity has none; use scale='affinity'"):
        SpectralNet(3, **TINY["spectralnet"] | {"affinity": LEARNED["self_expressive"]}, random_state=0).fit(X)


def test_transductive_methods_have_no_predict_and_embedding_methods_transform():
    for name in list_methods():
        method = tiny(name)
        assert hasattr(method, "predict") == method.capabilities.out_of_sample
    X = torch.randn(40, 3, generator=torch.Generator().manual_seed(0)).numpy()
    for name in ("spectralnet", "specnet2"):
        method = tiny(name)
        embedding = method.fit_transform(X)
        np.testing.assert_allclose(method.transform(X), embedding, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", list_methods())
def test_bad_input_to_every_method_names_the_problem(name):
    import scipy.sparse as sp
    from sklearn.exceptions import NotFittedError

    method = tiny(name)
    with pytest.raises(TypeError, match="Sparse data was passed .* dense data is required. Use '.toarray\\(\\)'"):
        method.fit(sp.random(30, 4, density=0.5, format="csr", random_state=0))
    for attribute in ("predict", "predict_proba", "transform"):
        if hasattr(method, attribute):
            with pytest.raises(NotFittedError, match="is not fitted yet. Call 'fit'"):
                getattr(method, attribute)(np.ones((3, 4)))


@pytest.mark.parametrize("name", [name for name in list_methods() if get_method(name).capabilities.out_of_sample])
@pytest.mark.parametrize("route", ["predict", "transform", "predict_proba"])
def test_new_data_at_1e30_is_refused_by_every_out_of_sample_method(name, route):
    from cutbench import CutbenchError

    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    fitted = tiny(name).fit(X)
    if not hasattr(fitted, route):
        pytest.skip(f"{name} has no {route}")
    with pytest.raises(CutbenchError, match="overflow float32"):
        getattr(fitted, route)(X * np.float32(1e30))
    with pytest.raises(CutbenchError, match="overflow float32"):  # a tensor takes the same route
        getattr(fitted, route)(torch.from_numpy(X) * 1e30)
    getattr(fitted, route)(X[:1])  # one ordinary row is fine: only training needs distinct rows


@pytest.mark.parametrize("name", [name for name in list_methods() if get_method(name).capabilities.minibatch])
def test_a_batch_larger_than_the_training_set_is_clipped_with_a_warning_kept_in_the_record(name):
    from cutbench import CutbenchWarning

    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    params = {**TINY.get(name, {}), "batch_size": 1000}
    with pytest.warns(CutbenchWarning, match=r"batch_size=1000 is more than the 40 training samples"):
        get_method(name)(**params, device="cpu", random_state=0).fit(X)
    raw = {"name": "clip", "datasets": [{"name": "blobs", "params": {"n": 40, "n_clusters": 3, "d": 4}}],
           "methods": [{"name": name, "params": params}], "seeds": [0], "device": "cpu",
           "timing": {"warmup": 0, "repeats": 1}}
    record, _ = run_cell(expand_study(raw).cells[0], DatasetCache(), "clip")
    assert record["status"] == "ok", record.get("error")
    assert any("batch_size=1000 is more than the 40 training samples" in w for w in record["warnings"])
