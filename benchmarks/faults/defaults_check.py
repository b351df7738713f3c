"""scikit-learn's estimator checks at each method's default parameters, only the training budget reduced: how
many checks fail per method, and which.

    python benchmarks/faults/defaults_check.py
    PYTHONPATH=/path/to/other/site python benchmarks/faults/defaults_check.py   # another version

The budget is the one ``tests/test_contract.py`` uses; that test runs the same checks and allows only the
documented failures. This script counts them, so two versions can be compared.
"""

from __future__ import annotations

import warnings

from sklearn.utils.estimator_checks import check_estimator

from cutbench.methods.registry import get_method, list_methods

BUDGET = {"neuncut": {"epochs": 5}, "neurcut": {"epochs": 5}, "spectralnet": {"epochs": 2, "steps_per_epoch": 2},
          "specnet2": {"epochs": 2}, "cnc": {"epochs": 2, "steps_per_epoch": 2}}


def main() -> int:
    for name in list_methods():
        estimator = get_method(name)(**BUDGET.get(name, {}), device="cpu", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = check_estimator(estimator, on_fail=None)
        failed = sorted(result["check_name"] for result in results if result["status"] == "failed")
        print(f"{name:<12} {len(failed):>3} of {len(results)} checks failed: {', '.join(failed) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
