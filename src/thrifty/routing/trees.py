"""Gradient-boosted trees as plain numpy arrays: exported from scikit-learn's
``HistGradientBoostingClassifier`` at training time, evaluated without scikit-learn (or pickle)
when a router serves.

Why: a router file must be data (``.npz`` arrays, never pickle) and the gateway must not import
scikit-learn per decision. Every tree is padded to the same node count and stacked into
``(n_trees, n_nodes)`` arrays; :func:`tree_raw` walks all trees for all rows at once, one
vectorised step per depth level, so a decision costs ``depth`` numpy gathers, not a Python loop
over hundreds of trees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The array names a boosted-tree model keeps in a router file (prefixed by the owner).
TREE_ARRAYS = ("feature", "threshold", "left", "right", "leaf", "value", "missing_left", "klass")


def export_hgb(model: Any) -> dict[str, np.ndarray]:
    """The fitted ``HistGradientBoostingClassifier``'s trees as arrays (numeric features only).

    ``klass[t]`` is the class column tree ``t`` adds to; ``baseline`` is the raw score every row
    starts from (one column for two classes, one per class otherwise).
    """
    trees = [tree for iteration in model._predictors for tree in iteration]
    per_iter = len(model._predictors[0])
    size = max(len(t.nodes) for t in trees)
    out: dict[str, np.ndarray] = {
        "feature": np.zeros((len(trees), size), np.int32),
        "threshold": np.zeros((len(trees), size), np.float64),
        "left": np.zeros((len(trees), size), np.int32),
        "right": np.zeros((len(trees), size), np.int32),
        "leaf": np.ones((len(trees), size), np.bool_),
        "value": np.zeros((len(trees), size), np.float64),
        "missing_left": np.zeros((len(trees), size), np.bool_),
        "klass": np.array([i % per_iter for i in range(len(trees))], np.int32),
    }
    for t, tree in enumerate(trees):
        nodes = tree.nodes
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits are not exported")
        m = len(nodes)
        out["feature"][t, :m] = nodes["feature_idx"]
        out["threshold"][t, :m] = nodes["num_threshold"]
        out["left"][t, :m] = nodes["left"]
        out["right"][t, :m] = nodes["right"]
        out["leaf"][t, :m] = nodes["is_leaf"].astype(bool)
        out["value"][t, :m] = nodes["value"]
        out["missing_left"][t, :m] = nodes["missing_go_to_left"].astype(bool)
    out["baseline"] = np.asarray(model._baseline_prediction, np.float64).reshape(-1)
    out["depth"] = np.array([int(max(t.nodes["depth"].max() for t in trees))], np.int32)
    return out


def tree_raw(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """``(n, columns)`` raw scores (baseline + leaf values) of every row of ``x``."""
    x = np.atleast_2d(np.asarray(x, np.float64))
    feature, threshold = arrays["feature"], arrays["threshold"]
    trees = np.arange(feature.shape[0])[None, :]
    node = np.zeros((len(x), feature.shape[0]), np.int64)
    for _ in range(int(arrays["depth"][0])):
        f = feature[trees, node]
        v = np.take_along_axis(x, f.reshape(len(x), -1), 1)
        go_left = np.where(
            np.isnan(v), arrays["missing_left"][trees, node], v <= threshold[trees, node]
        )
        step = np.where(go_left, arrays["left"][trees, node], arrays["right"][trees, node])
        node = np.where(arrays["leaf"][trees, node], node, step)
    leaves = arrays["value"][trees, node]
    baseline = arrays["baseline"]
    raw = np.tile(baseline, (len(x), 1))
    for k in range(len(baseline)):
        raw[:, k] += leaves[:, arrays["klass"] == k].sum(1)
    return raw


def tree_proba(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """``(n, classes)`` class probabilities, as ``predict_proba`` gives them."""
    raw = tree_raw(arrays, x)
    if raw.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.column_stack([1.0 - p, p])
    raw = raw - raw.max(1, keepdims=True)
    e = np.exp(raw)
    return e / e.sum(1, keepdims=True)
