"""Metrics checked against brute force over permutations, sklearn, networkx and direct counts."""

import itertools

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from cutbench import CutbenchError
from cutbench.metrics import (
    METRICS,
    NMI_AVERAGE_METHODS,
    Metric,
    accuracy,
    ari,
    evaluate,
    ncut_value,
    nmi,
    normalized_clustering_accuracy,
    rcut_value,
)


# -- independent references ------------------------------------------------------------------------------
def padded_table(y_true, y_pred):
    """Square contingency table (classes x clusters) padded with zeros to max(K, L)."""
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    size = max(len(classes), len(clusters))
    table = np.zeros((size, size))
    for a, b in zip(y_true, y_pred):
        table[np.searchsorted(classes, a), np.searchsorted(clusters, b)] += 1
    return table, len(classes)


def brute_force_accuracy(y_true, y_pred):
    table, _ = padded_table(y_true, y_pred)
    best = max(sum(table[i, perm[i]] for i in range(len(table))) for perm in itertools.permutations(range(len(table))))
    return best / len(y_true)


def brute_force_nca(y_true, y_pred):
    """max over matchings of (1/K) sum_i (c_i,s(i)/c_i - 1/K) / (1 - 1/K), zero-padded table."""
    table, k = padded_table(y_true, y_pred)
    row_sums = table[:k].sum(axis=1)
    best = max(
        np.mean([(table[i, perm[i]] / row_sums[i] - 1 / k) / (1 - 1 / k) for i in range(k)])
        for perm in itertools.permutations(range(len(table)), k)
    )
    return best


def random_labelling(rng, n, k_true, k_pred):
    y_true = rng.integers(0, k_true, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true % k_pred, rng.integers(0, k_pred, n))
    return y_true, y_pred


def random_weighted_graph(rng, n, density=0.4):
    W = np.triu(rng.random((n, n)) * (rng.random((n, n)) < density), 1)
    W = W + W.T
    W[np.arange(n - 1), np.arange(1, n)] = W[np.arange(1, n), np.arange(n - 1)] = 0.5  # a path keeps it connected
    return W


def direct_cut_terms(W, labels):
    """cut(A, V\\A), vol(A), |A| per cluster by explicit double loops."""
    terms = {}
    for label in np.unique(labels):
        inside = [i for i in range(len(labels)) if labels[i] == label]
        outside = [j for j in range(len(labels)) if labels[j] != label]
        cut = sum(W[i, j] for i in inside for j in outside)
        volume = sum(W[i, j] for i in inside for j in range(len(labels)))
        terms[label] = (cut, volume, len(inside))
    return terms


# -- accuracy --------------------------------------------------------------------------------------------
def test_accuracy_perfect_and_permutation_invariant():
    rng = np.random.default_rng(0)
    y_true, y_pred = random_labelling(rng, 80, 4, 4)
    relabel = {0: 17, 1: -3, 2: 5, 3: 100}  # arbitrary, non-contiguous labels
    assert accuracy(y_true, y_true) == 1.0
    assert accuracy(y_true, [relabel[v] for v in y_true]) == 1.0
    assert accuracy(y_true, np.array([relabel[v] for v in y_pred])) == accuracy(y_true, y_pred)


@pytest.mark.parametrize("k_true, k_pred", [(2, 2), (3, 3), (4, 4), (3, 5), (5, 3), (2, 4), (4, 2)])
def test_accuracy_equals_brute_force_over_permutations(k_true, k_pred):
    rng = np.random.default_rng(10 * k_true + k_pred)
    for _ in range(5):
        y_true, y_pred = random_labelling(rng, int(rng.integers(5, 40)), k_true, k_pred)
        assert accuracy(y_true, y_pred) == pytest.approx(brute_force_accuracy(y_true, y_pred), abs=1e-12)


def test_accuracy_with_empty_and_extra_clusters():
    y_true = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    # clusters 0..4 were asked for but only two received points
    assert accuracy(y_true, [4, 4, 4, 1, 1, 1, 1, 1, 1]) == pytest.approx(6 / 9)
    # a split class: the smaller part is unmatched
    assert accuracy(y_true, [0, 0, 5, 1, 1, 1, 2, 2, 2]) == pytest.approx(8 / 9)


def test_accuracy_accepts_torch_and_lists():
    assert accuracy(torch.tensor([0, 0, 1, 1]), [1, 1, 0, 0]) == 1.0


# -- NMI / ARI -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("average_method", NMI_AVERAGE_METHODS)
def test_nmi_matches_sklearn(average_method):
    rng = np.random.default_rng(1)
    y_true, y_pred = random_labelling(rng, 200, 5, 7)
    expected = normalized_mutual_info_score(y_true, y_pred, average_method=average_method)
    assert nmi(y_true, y_pred, average_method=average_method) == pytest.approx(expected, abs=1e-15)


def test_nmi_variants_differ_and_are_validated():
    rng = np.random.default_rng(2)
    y_true, y_pred = random_labelling(rng, 200, 3, 6)
    values = {method: nmi(y_true, y_pred, average_method=method) for method in NMI_AVERAGE_METHODS}
    assert values["max"] < values["arithmetic"] < values["min"]
    with pytest.raises(CutbenchError, match=r"average_method must be one of 'min', 'geometric', 'arithmetic', 'max'"):
        nmi(y_true, y_pred, average_method="sum")


def test_ari_matches_sklearn():
    rng = np.random.default_rng(3)
    y_true, y_pred = random_labelling(rng, 150, 4, 3)
    assert ari(y_true, y_pred) == pytest.approx(adjusted_rand_score(y_true, y_pred), abs=1e-15)


# -- NCA -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k_true, k_pred", [(2, 2), (3, 3), (4, 4), (3, 5), (5, 3), (2, 4), (4, 2)])
def test_nca_equals_brute_force_definition(k_true, k_pred):
    rng = np.random.default_rng(100 + 10 * k_true + k_pred)
    for _ in range(5):
        y_true, y_pred = random_labelling(rng, int(rng.integers(8, 40)), k_true, k_pred)
        expected = brute_force_nca(y_true, y_pred)
        assert normalized_clustering_accuracy(y_true, y_pred) == pytest.approx(expected, abs=1e-12)


def test_nca_known_values():
    y = np.repeat([0, 1, 2], 50)
    assert normalized_clustering_accuracy(y, y) == 1.0
    assert normalized_clustering_accuracy(y, 7 - 2 * y) == 1.0
    # Iris / k-means confusion table from the genieclust manual: [[50,0,0],[0,48,2],[0,14,36]] -> 0.84
    y_pred = np.r_[np.zeros(50), np.ones(48), np.full(2, 2), np.ones(14), np.full(36, 2)]
    assert normalized_clustering_accuracy(y, y_pred) == pytest.approx(0.84)
    # genieclust docstring example: table [[1,10],[8,2]] -> (10/11 + 8/10 - 1) / 1
    x = np.r_[1, 1, 2, 1, 2, 2, 2, 2, 1, 1, 2, 1, 1, 1, 1, 2, 2, 1, 2, 1, 2]
    z = np.r_[2, 2, 1, 2, 2, 1, 1, 1, 2, 2, 1, 1, 2, 2, 2, 1, 1, 2, 2, 2, 1]
    assert normalized_clustering_accuracy(x, z) == pytest.approx(10 / 11 + 8 / 10 - 1)
    # every class spread uniformly over the clusters: no better than chance
    balanced = np.repeat([0, 1, 2], 60)
    assert normalized_clustering_accuracy(balanced, np.tile([0, 1, 2], 60)) == pytest.approx(0.0, abs=1e-12)
    # one cluster for everything: two classes matched to empty clusters
    assert normalized_clustering_accuracy(y, np.zeros(150)) == pytest.approx((1 - 1) / 2)


def test_nca_is_asymmetric_and_weighs_classes_equally():
    # a small class entirely wrong costs NCA much more than ACC
    y_true = np.r_[np.zeros(90), np.ones(10)]
    y_pred = np.zeros(100)
    y_pred[95:] = 1
    assert accuracy(y_true, y_pred) == pytest.approx(0.95)
    assert normalized_clustering_accuracy(y_true, y_pred) == pytest.approx(1.0 + 0.5 - 1)
    assert normalized_clustering_accuracy(y_pred, y_true) != normalized_clustering_accuracy(y_true, y_pred)


def test_nca_needs_two_classes():
    with pytest.raises(CutbenchError, match="at least 2 true classes"):
        normalized_clustering_accuracy([1, 1, 1], [0, 1, 2])


# -- shared validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", [accuracy, nmi, ari, normalized_clustering_accuracy])
def test_mismatched_lengths_and_bad_labels_raise(metric):
    with pytest.raises(CutbenchError, match="same length; got 3 and 2"):
        metric([0, 1, 1], [0, 1])
    with pytest.raises(CutbenchError, match="1-D vector of labels"):
        metric(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(CutbenchError, match="integer labels"):
        metric([0.5, 1.0], [0, 1])


def test_evaluate_collects_every_metric_with_its_own_options():
    rng = np.random.default_rng(4)
    y_true, y_pred = random_labelling(rng, 120, 3, 3)
    W = sp.random(120, 120, density=0.1, random_state=0)
    W = W + W.T
    metrics = [METRICS["acc"], METRICS["nmi"].with_options(average_method="geometric"), METRICS["ari"],
               METRICS["nca"], METRICS["ncut_value"], METRICS["rcut_value"]]
    scores, notes = evaluate(metrics, y_pred, y_true=y_true, graph=W)
    assert scores == {
        "acc": accuracy(y_true, y_pred),
        "nmi": nmi(y_true, y_pred, average_method="geometric"),
        "ari": ari(y_true, y_pred),
        "nca": normalized_clustering_accuracy(y_true, y_pred),
        "ncut_value": ncut_value(W, y_pred),
        "rcut_value": rcut_value(W, y_pred),
    }
    assert notes == {} and all(type(value) is float for value in scores.values())
    # without the graph, the cut values are null with the reason
    scores, notes = evaluate(metrics, y_pred, y_true=y_true)
    assert scores["ncut_value"] is None and notes["ncut_value"] == "needs graph, which this cell does not have"


def test_a_metric_declares_its_needs_and_options():
    assert METRICS["ncut_value"].needs == ("graph",) and not METRICS["ncut_value"].higher_is_better
    assert METRICS["nmi"].options == {"average_method": "arithmetic"}
    with pytest.raises(CutbenchError, match="no option.*average; accepted: average_method"):
        METRICS["nmi"].with_options(average="min")
    with pytest.raises(CutbenchError, match="average_method must be one of"):
        METRICS["nmi"].with_options(average_method="mean")
    with pytest.raises(CutbenchError, match="each need is one of labels, graph, embedding"):
        Metric("x", lambda **_: 0.0, True, needs=("points",))
    embedded = Metric("spread", lambda y_pred, embedding: float(np.var(embedding)), False, needs=("embedding",))
    assert evaluate([embedded], [0, 1], embedding=np.array([[0.0], [2.0]]))[0] == {"spread": 1.0}


def test_a_metric_returning_a_string_is_named():
    bad = Metric("purity", lambda y_true, y_pred: "high", True)
    with pytest.raises(CutbenchError, match="metric 'purity' returned 'high' \\(str\\), not a number"):
        evaluate([bad], [0, 1], y_true=[0, 1])


# -- Ncut / RatioCut -------------------------------------------------------------------------------------
def as_kinds(W):
    return [W, sp.csr_matrix(W), sp.coo_matrix(W), torch.tensor(W), torch.tensor(W).to_sparse()]


def test_two_way_ncut_and_rcut_match_direct_counts_and_networkx():
    rng = np.random.default_rng(5)
    W = random_weighted_graph(rng, 14)
    labels = rng.integers(0, 2, 14)
    terms = direct_cut_terms(W, labels)
    (cut_a, vol_a, size_a), (cut_b, vol_b, size_b) = terms.values()
    assert cut_a == pytest.approx(cut_b)
    G = nx.from_numpy_array(W)
    S = set(np.flatnonzero(labels == 0).tolist())
    T = set(range(14)) - S
    expected_ncut = nx.algorithms.cuts.normalized_cut_size(G, S, T, weight="weight")
    assert cut_a / vol_a + cut_b / vol_b == pytest.approx(expected_ncut)
    for kind in as_kinds(W):
        assert ncut_value(kind, labels) == pytest.approx(expected_ncut, rel=1e-12)
        assert rcut_value(kind, labels) == pytest.approx(cut_a / size_a + cut_b / size_b, rel=1e-12)


def test_multiway_cuts_with_self_loops_and_arbitrary_labels():
    rng = np.random.default_rng(6)
    W = random_weighted_graph(rng, 15)
    np.fill_diagonal(W, 1.0)  # self-loops add to volumes, never to cuts
    labels = rng.choice([-4, 9, 23], size=15)
    terms = direct_cut_terms(W, labels).values()
    expected_ncut = sum(cut / volume for cut, volume, _ in terms)
    expected_rcut = sum(cut / size for cut, _, size in terms)
    for kind in as_kinds(W):
        assert ncut_value(kind, labels) == pytest.approx(expected_ncut, rel=1e-12)
        assert rcut_value(kind, labels) == pytest.approx(expected_rcut, rel=1e-12)
    remapped = np.searchsorted([-4, 9, 23], labels)
    assert ncut_value(W, remapped) == pytest.approx(expected_ncut, rel=1e-12)


def test_cut_of_a_perfect_partition_is_zero_and_one_cluster_is_zero():
    W = sp.block_diag([np.ones((3, 3)), 2 * np.ones((4, 4))]).tocsr()
    assert ncut_value(W, [0, 0, 0, 1, 1, 1, 1]) == 0.0
    assert rcut_value(W, [5] * 7) == 0.0


def test_cut_values_reject_bad_input():
    W = random_weighted_graph(np.random.default_rng(7), 6)
    with pytest.raises(CutbenchError, match="labels has length 5 but W is 6 x 6"):
        ncut_value(W, [0, 1, 0, 1, 0])
    with pytest.raises(CutbenchError, match="square"):
        rcut_value(np.ones((3, 4)), [0, 1, 0])
    with pytest.raises(CutbenchError, match="non-negative"):
        ncut_value(-W, [0, 1, 0, 1, 0, 1])
    isolated = W.copy()
    isolated[5, :] = isolated[:, 5] = 0
    with pytest.raises(CutbenchError, match=r"cluster\(s\) \[2\] have zero volume"):
        ncut_value(isolated, [0, 1, 0, 1, 0, 2])
    assert rcut_value(isolated, [0, 1, 0, 1, 0, 2]) > 0
