"""The label-free choice of gamma (NeuNcut paper §4.6) on a small problem whose floor is known."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from cutbench import CutbenchError
from cutbench.methods.neuncut import NeuNcut, search_gamma

pytestmark = pytest.mark.usefixtures("one_thread")

PARAMS = {"affinity": {"n_neighbors": 10}, "hidden_dims": (32,), "batch_size": 200, "epochs": 30, "random_state": 0,
          "device": "cpu"}
GAMMAS = (1e4, 300, 100, 30, 10, 3, 1, 0.3, 0.1, 0.03, 0.01)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(600, centers=4, cluster_std=1.0, random_state=0)
    return (X / X.std()).astype(np.float32), y


@pytest.mark.filterwarnings("ignore:NeuNcut used only")  # the collapse below the threshold is the point
def test_the_search_finds_the_floor_and_the_smallest_gamma_that_keeps_it(blobs):
    X, _ = blobs
    result = search_gamma(X, 4, gammas=GAMMAS, **PARAMS)
    assert result.gammas == tuple(sorted(GAMMAS, reverse=True))
    # The floor is the lowest orthogonality loss reached with the largest gamma, trained on its own.
    alone = NeuNcut(4, **{**PARAMS, "gamma": 1e4}).fit(X).history_["orth"]
    assert result.floor == pytest.approx(min(alone)) == pytest.approx(result.orthogonality[0])
    # The chosen gamma: scanning down, the last one whose L_orth stays within 2 % of the floor.
    within = [orth <= result.floor * 1.02 + 1e-6 for orth in result.orthogonality]
    expected = result.gammas[within.index(False) - 1] if False in within else result.gammas[-1]
    assert result.chosen == expected and result.gammas[-1] < result.chosen < result.gammas[0]
    # Below the threshold the clusters collapse (L_orth off its floor, L_Lap towards 0); at it they do not.
    assert result.orthogonality[-1] > 1.5 * result.floor and result.laplacian[-1] < result.laplacian[0]
    assert len(np.unique(NeuNcut(4, **{**PARAMS, "gamma": result.chosen}).fit(X).labels_)) == 4
    assert len(np.unique(NeuNcut(4, **{**PARAMS, "gamma": result.gammas[-1]}).fit(X).labels_)) < 4


def test_bad_search_arguments_are_refused(blobs):
    X, _ = blobs
    with pytest.raises(CutbenchError, match="at least one gamma and a tolerance >= 0"):
        search_gamma(X, 4, gammas=(), **PARAMS)


def test_the_cli_entry_writes_the_table_json_and_figure(tmp_path, capsys):
    import json

    from cutbench.cli import main

    argv = ["gamma-search", "two_moons", "--n", "300", "--gammas", "1000", "10", "1", "--params",
            "{epochs: 3, batch_size: 100, hidden_dims: [16, 16]}", "--out", str(tmp_path)]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "gamma_search.json").read_text())
    assert saved["gammas"] == [1000.0, 10.0, 1.0] and saved["chosen"] in saved["gammas"]
    assert f"chosen gamma {saved['chosen']:g}" in capsys.readouterr().out
    assert (tmp_path / "gamma_search.png").stat().st_size > 0 and (tmp_path / "gamma_search.md").is_file()
    assert main([*argv[:-4], "--params", "[1, 2]"]) == 2
    assert "--params must be a YAML mapping" in capsys.readouterr().err
