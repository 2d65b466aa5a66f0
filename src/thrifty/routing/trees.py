"""Gradient-boosted trees as plain numpy arrays: exported from scikit-learn's
``HistGradientBoostingClassifier`` at training time, evaluated without scikit-learn (or pickle)
when a router serves.

Why: a router file must be data (``.npz`` arrays, never pickle) and the gateway must not import
scikit-learn per decision. Every tree is padded to the same node count and stacked into
``(n_trees, n_nodes)`` arrays; :func:`tree_raw` walks all trees for all rows at once, one
vectorised step per depth level (a flat node index; leaves point at themselves), so a decision
costs ``depth`` numpy gathers, not a Python loop over hundreds of trees.
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


def prepare(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Nodes of all trees in one flat index; a leaf's children are itself, so a walk just stays
    there once it arrives (no leaf test per level)."""
    n_trees, size = arrays["feature"].shape
    offset = (np.arange(n_trees) * size)[:, None]
    here = offset + np.arange(size)[None, :]
    leaf = arrays["leaf"].astype(bool)
    left = np.where(leaf, here, offset + arrays["left"]).ravel()
    right = np.where(leaf, here, offset + arrays["right"]).ravel()
    onehot = np.eye(len(arrays["baseline"]))[arrays["klass"]]  # (trees, columns)
    return (
        arrays["feature"].ravel().astype(np.int64),
        arrays["threshold"].ravel().astype(np.float64),
        arrays["missing_left"].ravel().astype(bool),
        left.astype(np.int64),
        right.astype(np.int64),
        arrays["value"].ravel().astype(np.float64),
        offset.ravel(),
        onehot,
    )


def tree_raw(
    arrays: dict[str, np.ndarray], x: np.ndarray, prepared: tuple[np.ndarray, ...] | None = None
) -> np.ndarray:
    """``(n, columns)`` raw scores (baseline + leaf values) of every row of ``x``; ``prepared``:
    :func:`prepare` of ``arrays``, kept by a caller that scores often."""
    x = np.atleast_2d(np.asarray(x, np.float64))
    flat = prepared if prepared is not None else prepare(arrays)
    feature, threshold, missing, left, right, value, offset, onehot = flat
    rows = np.arange(len(x))[:, None]
    node = np.tile(offset, (len(x), 1))
    for _ in range(int(arrays["depth"][0])):
        v = x[rows, feature[node]]
        go_left = (v <= threshold[node]) | (np.isnan(v) & missing[node])
        node = np.where(go_left, left[node], right[node])
    return np.asarray(arrays["baseline"], np.float64) + value[node] @ onehot


def tree_proba(
    arrays: dict[str, np.ndarray], x: np.ndarray, prepared: tuple[np.ndarray, ...] | None = None
) -> np.ndarray:
    """``(n, classes)`` class probabilities, as ``predict_proba`` gives them."""
    raw = tree_raw(arrays, x, prepared)
    if raw.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.column_stack([1.0 - p, p])
    raw = raw - raw.max(1, keepdims=True)
    e = np.exp(raw)
    return e / e.sum(1, keepdims=True)
