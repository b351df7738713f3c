"""Ncut baseline: top eigenvectors of the normalised affinity, then k-means (Ng–Jordan–Weiss).

With W the affinity graph and D = diag(W 1), the relaxed normalised cut is solved by the top
``n_components`` eigenvectors of M = D^-1/2 W D^-1/2 (largest algebraic eigenvalues, all in [-1, 1]).
This is the route of SENet's ``spectral_clustering`` (``eigsh(I - L_sym, which='LA')``), the closest
code to the Ncut baseline of the NeuNcut paper; it avoids shift-invert on the Laplacian.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import ArpackNoConvergence, eigsh
from sklearn.cluster import KMeans as SklearnKMeans

from cutbench import CutbenchError, CutbenchWarning
from cutbench._validation import seed_generators
from cutbench.affinity import check_affinity_graph, prepare_affinity
from cutbench.graph import degrees
from cutbench.methods.base import AFFINITY, EVERY_AFFINITY, Capabilities, ClusteringMethod
from cutbench.params import Boolean, Interval, NoneValue, Options

EIGEN_SOLVERS = ("auto", "arpack", "lobpcg")

# LOBPCG iterates a block wider than n_components: convergence then depends on the gap to the
# (block + 1)-th eigenvalue, which on kNN graphs cuts iterations about five-fold.
_LOBPCG_EXTRA_COLUMNS = 8
_LOBPCG_MAX_ITER = 2000
# Connected components up to this size are solved by dense eigh in the ARPACK route.
_DENSE_MAX_NODES = 256
# The eigen_residual_ above which a CutbenchWarning reports an unconverged eigensolve.
_RESIDUAL_WARN_FACTOR = 10.0
_RESIDUAL_WARN_FLOOR = 1e-10


def _normalized_adjacency(W: sp.csr_matrix) -> sp.csr_matrix:
    """M = D^-1/2 W D^-1/2; zero-degree nodes are an error because D^-1/2 is undefined there."""
    degree = degrees(W)
    n_isolated = int((degree <= 0).sum())
    if n_isolated:
        raise CutbenchError(f"the graph has {n_isolated} node(s) with zero degree (no edge and no self-loop), "
                            "so D^-1/2 W D^-1/2 is undefined; use an affinity with self_loops=True, a larger "
                            "n_neighbors (s) or a larger sigma, or drop those points.")
    scale = sp.diags(1.0 / np.sqrt(degree))
    return (scale @ W @ scale).tocsr()


def _top_eigenpairs_arpack(M, n_components, tol, rng, component_labels):
    """Largest algebraic eigenpairs of M with ARPACK (Lanczos), one connected component at a time.

    M is block diagonal over the components and eigenvalue 1 repeats once per component; single-vector
    Lanczos cannot resolve a repetition across exactly decoupled blocks (it returns wrong eigenpairs),
    so each component is solved on its own (seeded start vector; dense eigh for components of at most
    ``max(256, 3 * n_components)`` nodes) and the top ``n_components`` eigenpairs overall are kept.
    Returns the eigenpairs and the solver used: "arpack", or "dense" when every component was small.
    """
    n_nodes = M.shape[0]
    sizes = np.bincount(component_labels)
    nodes_by_component = np.split(np.argsort(component_labels, kind="stable"), np.cumsum(sizes)[:-1])
    values, owners = [], []  # owners[i] = (component nodes, eigenvector on them) of values[i]
    solver = "dense"
    for nodes in nodes_by_component:
        block = M if len(sizes) == 1 else M[nodes][:, nodes]
        k = min(n_components, len(nodes))
        if len(nodes) <= max(_DENSE_MAX_NODES, 3 * n_components):
            block_values, block_vectors = np.linalg.eigh(block.toarray())
            block_values, block_vectors = block_values[-k:], block_vectors[:, -k:]
        else:
            solver = "arpack"
            try:
                block_values, block_vectors = eigsh(block, k=k, which="LA", tol=tol,
                                                    v0=rng.uniform(-1.0, 1.0, len(nodes)))
            except ArpackNoConvergence as exc:
                raise CutbenchError(f"ARPACK did not converge to {k} eigenpairs at eigen_tol={tol:g} "
                                    f"({len(exc.eigenvalues)} converged); try eigen_solver='lobpcg', a larger "
                                    "eigen_tol, or a better connected graph (larger n_neighbors).") from exc
        values.extend(block_values)
        owners.extend((nodes, vector) for vector in block_vectors.T)
    top = np.argsort(-np.asarray(values), kind="stable")[:n_components]
    vectors = np.zeros((n_nodes, n_components))
    for column, index in enumerate(top):
        nodes, vector = owners[index]
        vectors[nodes, column] = vector
    return np.asarray(values)[top], vectors, solver


def _csr_to_torch(A: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(A.indptr.astype(np.int64)).to(device),
            torch.from_numpy(A.indices.astype(np.int64)).to(device),
            torch.from_numpy(A.data).to(device),
            size=A.shape,
            check_invariants=False,  # scipy CSR with sorted indices is already canonical
        )


def _top_eigenpairs_lobpcg(M, n_components, tol, device, torch_generator):
    """Largest eigenpairs of M with torch.lobpcg on the PSD shift M + I, on ``device`` in float64.

    Returns the eigenpairs and the solver actually used: torch.lobpcg needs at least three rows per
    block column, so tiny graphs (n < 3 * n_components) get a dense ``torch.linalg.eigh`` instead.
    """
    n_nodes = M.shape[0]
    block_size = min(max(2 * n_components, n_components + _LOBPCG_EXTRA_COLUMNS), n_nodes // 3)
    if block_size < n_components:
        dense = torch.from_numpy(M.toarray()).to(device)
        values, vectors = torch.linalg.eigh(dense)
        return values[-n_components:].cpu().numpy(), vectors[:, -n_components:].cpu().numpy(), "dense"
    shifted = (M + sp.identity(n_nodes, format="csr")).tocsr()
    shifted.sort_indices()
    initial_block = torch.randn(n_nodes, block_size, generator=torch_generator, dtype=torch.float64).to(device)
    # torch stops when ||r|| <= tol * (||A X||/||X|| + |lambda|) and both terms are <= ||M + I|| = 2,
    # so tol / 4 guarantees ||M v - lambda v|| <= eigen_tol.
    values, vectors = torch.lobpcg(_csr_to_torch(shifted, device), k=n_components, X=initial_block, tol=tol / 4,
                                   largest=True, niter=_LOBPCG_MAX_ITER)
    return values.cpu().numpy() - 1.0, vectors.cpu().numpy(), "lobpcg"


@dataclass(frozen=True)
class SpectralEmbedding:
    """The top eigenpairs of ``M = D^-1/2 W D^-1/2`` and how they were found (see :func:`spectral_embedding`)."""

    values: np.ndarray
    vectors: np.ndarray
    solver: str
    residual: float
    n_connected_components: int


def spectral_embedding(W: sp.csr_matrix, n_components: int, *, eigen_solver: str = "arpack", eigen_tol: float = 1e-6,
                       device=torch.device("cpu"), rng=None, torch_generator=None) -> SpectralEmbedding:
    """Top ``n_components`` eigenpairs of the normalised affinity of a checked graph ``W``.

    Eigenvalues decrease; each eigenvector is signed so that its largest-magnitude entry is positive.
    A graph with several connected components gets a :class:`~cutbench.CutbenchWarning` (eigenvalue 1
    repeats); an eigensolve whose residual ``max ||M v - λ v|| / ||v||`` exceeds
    ``max(10 * eigen_tol, 1e-10)`` gets one too. ``eigen_solver`` is "arpack", "lobpcg" or "auto"
    (ARPACK on the CPU, LOBPCG on CUDA); see :class:`Ncut`.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    torch_generator = torch.Generator().manual_seed(0) if torch_generator is None else torch_generator
    M = _normalized_adjacency(W)
    n_connected, component_labels = connected_components(W, directed=False)
    if n_connected > 1:
        warnings.warn(f"the graph has {n_connected} connected components: eigenvalue 1 of D^-1/2 W D^-1/2 "
                      f"has multiplicity {n_connected}, with the component indicators as eigenvectors (the "
                      "result is still valid); use a larger n_neighbors or sigma for a connected graph.",
                      CutbenchWarning, stacklevel=4)
    solver = eigen_solver
    if solver == "auto":
        solver = "arpack" if torch.device(device).type == "cpu" else "lobpcg"
    if solver == "arpack":
        values, vectors, solver = _top_eigenpairs_arpack(M, n_components, eigen_tol, rng, component_labels)
    else:
        values, vectors, solver = _top_eigenpairs_lobpcg(M, n_components, eigen_tol, device, torch_generator)
    order = np.argsort(-values, kind="stable")
    values, vectors = values[order], vectors[:, order]
    residual = float(np.max(np.linalg.norm(M @ vectors - vectors * values, axis=0) / np.linalg.norm(vectors, axis=0)))
    warn_above = max(_RESIDUAL_WARN_FACTOR * eigen_tol, _RESIDUAL_WARN_FLOOR)
    if residual > warn_above:
        warnings.warn(f"the {solver} eigensolve did not converge: eigen_residual_ = {residual:.2e} > {warn_above:.1e}; "
                      "the embedding may be inaccurate. Try the other eigen_solver, a larger eigen_tol, or a better "
                      "connected graph.", CutbenchWarning, stacklevel=4)
    largest_entry = vectors[np.abs(vectors).argmax(axis=0), np.arange(n_components)]
    vectors = vectors * np.where(largest_entry < 0, -1.0, 1.0)
    return SpectralEmbedding(values, vectors, solver, residual, int(n_connected))


class Ncut(ClusteringMethod):
    """Normalised-cut spectral clustering: eigenvectors of D^-1/2 W D^-1/2, row normalisation, k-means.

    Parameters
    ----------
    n_clusters : int, default=2
        Number of clusters k.
    affinity : {"knn", "neuncut", "siamese", ...}, Affinity, SiameseAffinity or dict, default="knn"
        Affinity used to build the graph from ``X`` with :func:`cutbench.affinity.prepare_affinity`;
        ignored when ``fit`` receives ``graph=``.
    n_components : int or None, default=None
        Embedding dimension (number of eigenvectors), below n_samples. None means ``n_clusters``
        (Ncut proper); SENet used 15 for MNIST. Fewer than ``n_clusters`` is allowed, as in
        scikit-learn's ``SpectralClustering``.
    eigen_solver : {"auto", "arpack", "lobpcg"}, default="auto"
        "arpack": :func:`scipy.sparse.linalg.eigsh` with ``which='LA'`` on the host, seeded start
        vector, run per connected component (components of at most ``max(256, 3 * n_components)``
        nodes by dense ``numpy.linalg.eigh``; ``eigen_solver_`` is "dense" when all were).
        "lobpcg": :func:`torch.lobpcg` on the PSD shift M + I (a sparse CSR tensor on the device,
        float64, seeded initial block of ``max(2k, k + 8)`` columns, at most 2000 iterations); graphs
        with fewer than three rows per block column use a dense ``torch.linalg.eigh``.
        "auto": "arpack" on the CPU, "lobpcg" on CUDA.
    eigen_tol : float, default=1e-6
        Stopping tolerance, in (0, 1), on the eigenpair residual ||M v - lambda v|| (||M|| = 1, so it
        is also a relative residual).
    normalize_embedding : bool, default=True
        L2-normalise the rows of the eigenvector matrix before k-means (Ng–Jordan–Weiss).
    n_init : int, default=10
        k-means++ restarts of the final k-means (run on the CPU).
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Device of the graph construction and of the "lobpcg" solver.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the eigensolver start vector(s) and k-means.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,), int64
    embedding_ : ndarray of shape (n_samples, n_components_)
        Input of k-means: ``eigenvectors_`` with unit rows when ``normalize_embedding``.
    eigenvectors_ : ndarray of shape (n_samples, n_components_)
        Orthonormal top eigenvectors of M, columns ordered by decreasing eigenvalue, each signed so
        that its largest-magnitude entry is positive.
    eigenvalues_ : ndarray of shape (n_components_,)
        Matching eigenvalues of M, decreasing.
    eigen_residual_ : float
        max over columns of ||M v - lambda v|| / ||v||, computed on the host after the solve; a
        CutbenchWarning is issued when it exceeds ``max(10 * eigen_tol, 1e-10)``.
    eigen_solver_ : {"arpack", "lobpcg", "dense"}
        Solver actually used.
    n_components_ : int
        Embedding dimension used.
    affinity_ : Affinity, SiameseAffinity or None
        Affinity the graph was built with; None for a precomputed graph.
    affinity_graph_stats_ : dict
        ``n_nodes``, ``nnz`` (stored entries of the symmetrised W) and ``n_connected_components``.
    n_features_in_ : int

    Notes
    -----
    Ncut is transductive: it has no ``predict``; ``fit_predict(X)`` labels the points it is fitted
    on. ``fit(X, graph=W)`` takes a precomputed affinity of ``X`` (scipy sparse, numpy or torch;
    symmetric, nonnegative, finite, no zero-degree node) instead of building one.
    """

    name = "ncut"
    capabilities = Capabilities(gpu=True, minibatch=False, out_of_sample=False, precomputed_graph=True,
                                affinity_kinds=EVERY_AFFINITY)
    check_params = {"n_init": 1, "affinity": {"n_neighbors": 3}}
    _parameter_constraints = {
        **ClusteringMethod._parameter_constraints,
        "affinity": [AFFINITY],
        "n_components": [Interval(int, 1), NoneValue("n_clusters")],
        "eigen_solver": [Options(*EIGEN_SOLVERS)],
        "eigen_tol": [Interval(float, 0, 1, closed="neither")],
        "normalize_embedding": [Boolean()],
        "n_init": [Interval(int, 1)],
    }

    def __init__(self, n_clusters=2, *, affinity="knn", n_components=None, eigen_solver="auto", eigen_tol=1e-6,
                 normalize_embedding=True, n_init=10, device="auto", random_state=None):
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.n_components = n_components
        self.eigen_solver = eigen_solver
        self.eigen_tol = eigen_tol
        self.normalize_embedding = normalize_embedding
        self.n_init = n_init
        self.device = device
        self.random_state = random_state

    def _fit(self, X, graph=None):
        n_samples = X.shape[0]
        n_components = self.n_clusters if self.n_components is None else self.n_components
        if not n_components < n_samples:
            raise CutbenchError(f"n_components must be below n_samples = {n_samples}; got {n_components}.")
        device = self._device()
        rng, torch_generator, seed = seed_generators(self.random_state)

        if graph is None:
            prepared = prepare_affinity(self.affinity, X, device=device, random_state=seed)
            self.affinity_ = prepared.spec
            W = check_affinity_graph(prepared.graph(), n_samples)
        else:
            self.affinity_ = None
            W = check_affinity_graph(graph, n_samples)
        embedding = spectral_embedding(W, n_components, eigen_solver=self.eigen_solver, eigen_tol=self.eigen_tol,
                                       device=device, rng=rng, torch_generator=torch_generator)
        self.affinity_graph_stats_ = {"n_nodes": n_samples, "nnz": int(W.nnz),
                                      "n_connected_components": embedding.n_connected_components}
        self.eigen_residual_ = embedding.residual
        solver, values, vectors = embedding.solver, embedding.values, embedding.vectors
        self.eigen_solver_ = solver
        self.n_components_ = n_components
        self.eigenvalues_ = values
        self.eigenvectors_ = vectors
        if self.normalize_embedding:
            row_norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            self.embedding_ = vectors / np.maximum(row_norms, np.finfo(np.float64).tiny)
        else:
            self.embedding_ = vectors
        kmeans = SklearnKMeans(n_clusters=self.n_clusters, n_init=int(self.n_init), random_state=seed)
        self.labels_ = kmeans.fit(self.embedding_).labels_.astype(np.int64)
