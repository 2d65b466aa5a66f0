"""The numpy tree evaluator gives scikit-learn's probabilities (router files hold no pickle)."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.routing.trees import export_hgb, tree_proba

pytest.importorskip("sklearn")


@pytest.mark.parametrize("classes", [2, 4])
def test_tree_proba_matches_sklearn(classes: int) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(classes)
    x = rng.standard_normal((600, 7))
    y = ((x[:, 0] > 0).astype(int) + (x[:, 1] * x[:, 2] > 0)) % classes
    model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, random_state=0)
    model.fit(x, y)
    query = rng.standard_normal((200, 7))
    query[::17, 3] = np.nan  # missing values follow the trees' learned side
    np.testing.assert_allclose(tree_proba(export_hgb(model), query), model.predict_proba(query))


def test_tree_missing_values_seen_in_training() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(5)
    x = rng.standard_normal((500, 3))
    x[rng.random(500) < 0.2, 0] = np.nan
    y = (np.nan_to_num(x[:, 0], nan=2.0) > 0.5).astype(int)
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(x, y)
    query = rng.standard_normal((100, 3))
    query[::3, 0] = np.nan
    np.testing.assert_allclose(tree_proba(export_hgb(model), query), model.predict_proba(query))
