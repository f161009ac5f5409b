"""The random forest learner that grows each round (colearn's iris example), its
fixed-capacity array layout and numpy prediction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.tree import DecisionTreeClassifier

from colearn_core.codec import WeightsMismatchError
from colearn_core.learners._base import Learner, current_model, raw_weights
from colearn_core.learners.sklearn._common import (
    ScoreError,
    ScoreFn,
    WeightsLike,
    _check_sets,
    _check_structure,
    _copy_weights,
    _Criterion,
    _direction,
    _resolve,
)
from colearn_core.ml_interface import ColearnModel, ProposedWeights, TrainingSummary, Weights

log = logging.getLogger(__name__)


TREE_LEAF = -1  # children of a leaf (scikit-learn's TREE_LEAF)
TREE_UNDEFINED = -2  # feature and threshold of a leaf (scikit-learn's TREE_UNDEFINED)
FOREST_NAMES = ("n_trees", "node_count", "children_left", "children_right", "feature",
                "threshold", "value")


def _round_down_float32(values: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 value. For a float32 feature ``x``,
    ``x <= t`` and ``x <= round_down(t)`` then agree exactly, so thresholds stored as
    float32 split exactly as scikit-learn's float64 ones do (sklearn compares float32
    features with float64 thresholds), in numpy and in ONNX alike."""
    down = values.astype(np.float32)
    above = down.astype(np.float64) > values
    down[above] = np.nextafter(down[above], np.float32(-np.inf))
    return down


@dataclass(frozen=True)
class ForestLayout:
    """The fixed array structure of a forest of at most ``max_trees`` trees of at most
    ``max_nodes`` nodes each, over ``n_features`` features and ``n_classes`` classes.

    Arrays (trees in slots ``0 .. n_trees - 1``, oldest first; nodes in scikit-learn's
    depth-first order, so children always have larger indices than their parent):

    - ``n_trees`` int32 (1,); ``node_count`` int32 (max_trees,)
    - ``children_left``, ``children_right`` int32 (max_trees, max_nodes): -1 for leaves
    - ``feature`` int32 (max_trees, max_nodes): -2 for leaves
    - ``threshold`` float32 (max_trees, max_nodes): go left iff ``x[feature] <= threshold``
      (sklearn's float64 threshold rounded down, which splits float32 data identically);
      -2 for leaves
    - ``value`` float64 (max_trees, max_nodes, n_classes): a leaf's class probabilities
      (sum 1); zero for internal nodes.

    Unused slots and nodes hold the canonical empty values (children -1, feature -2,
    threshold -2, value 0, node_count 0), so equal forests have equal bytes.
    """

    max_trees: int
    max_nodes: int
    n_features: int
    n_classes: int

    def empty(self) -> dict[str, np.ndarray]:
        t, n = self.max_trees, self.max_nodes
        return {
            "n_trees": np.zeros(1, np.int32),
            "node_count": np.zeros(t, np.int32),
            "children_left": np.full((t, n), TREE_LEAF, np.int32),
            "children_right": np.full((t, n), TREE_LEAF, np.int32),
            "feature": np.full((t, n), TREE_UNDEFINED, np.int32),
            "threshold": np.full((t, n), TREE_UNDEFINED, np.float32),
            "value": np.zeros((t, n, self.n_classes), np.float64),
        }

    def validate(self, weights: Any) -> dict[str, np.ndarray]:
        """``weights`` as a dict of arrays if they are a well-formed forest of this
        layout; else :class:`WeightsMismatchError` (or :class:`WeightsFormatError` for
        something that is not a mapping of arrays) saying what is wrong.

        Checked: names, shapes, dtypes, finite values; tree count and node counts within
        capacity; every child index larger than its parent's and below the node count
        (so traversal ends: no cycles); features in range; leaves' distributions
        non-negative and summing to 1; unused entries canonical."""
        w = _check_structure(raw_weights(weights), self.empty(), require_finite=True)
        n = int(w["n_trees"][0])
        if not 0 <= n <= self.max_trees:
            raise WeightsMismatchError(f"n_trees is {n}, outside 0..{self.max_trees}")
        counts = w["node_count"].astype(np.int64)
        bad = np.flatnonzero((counts[:n] < 1) | (counts[:n] > self.max_nodes))
        if bad.size:
            raise WeightsMismatchError(
                f"tree {bad[0]} has node_count {counts[bad[0]]}, outside 1..{self.max_nodes}")
        if np.any(counts[n:] != 0):
            raise WeightsMismatchError("node_count of an unused tree slot is not 0")
        index = np.arange(self.max_nodes)
        used = (np.arange(self.max_trees)[:, None] < n) & (index[None, :] < counts[:, None])
        left = w["children_left"].astype(np.int64)
        right = w["children_right"].astype(np.int64)
        feature = w["feature"].astype(np.int64)
        threshold, value = w["threshold"], w["value"]
        empty = self.empty()

        def fail(mask: np.ndarray, what: str) -> None:
            where = np.argwhere(mask)
            if where.size:
                tree, node = where[0][:2]
                raise WeightsMismatchError(f"tree {tree} node {node}: {what}")

        for name in ("children_left", "children_right", "feature", "threshold"):
            fail(~used & (w[name] != empty[name]), f"{name} of an unused node is not canonical")
        fail(~used & np.any(value != 0, axis=2), "value of an unused node is not 0")
        leaf = used & (left == TREE_LEAF)
        internal = used & ~leaf
        fail(leaf & (right != TREE_LEAF), "a leaf (left child -1) has a right child")
        fail(leaf & ((feature != TREE_UNDEFINED) | (threshold != TREE_UNDEFINED)),
             "a leaf's feature and threshold must be -2")
        fail(internal & ((left <= index) | (right <= index)),
             "a child index is not larger than its parent's (cycles are refused)")
        fail(internal & ((left >= counts[:, None]) | (right >= counts[:, None])),
             "a child index is beyond the tree's node_count")
        fail(internal & (left == right), "both children are the same node")
        fail(internal & ((feature < 0) | (feature >= self.n_features)),
             f"feature index outside 0..{self.n_features - 1}")
        fail(internal & np.any(value != 0, axis=2), "an internal node's value is not 0")
        fail(leaf & np.any(value < 0, axis=2), "a leaf has a negative class probability")
        fail(leaf & (np.abs(value.sum(axis=2) - 1.0) > 1e-6),
             "a leaf's class probabilities do not sum to 1")
        return w

    def predict_proba(self, weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """Class probabilities of validated forest ``weights`` on ``x`` (n, n_features):
        the mean of the trees' leaf distributions; uniform for an empty forest. Pure
        numpy, all trees and samples at once, one tree level per step."""
        x32 = np.asarray(x, dtype=np.float32)
        if x32.ndim != 2 or x32.shape[1] != self.n_features:
            raise ValueError(f"x must have shape (n, {self.n_features}), got {x32.shape}")
        n = int(weights["n_trees"][0])
        if n == 0:
            return np.full((len(x32), self.n_classes), 1.0 / self.n_classes)
        left = weights["children_left"][:n]
        right = weights["children_right"][:n]
        feature = weights["feature"][:n]
        threshold = weights["threshold"][:n]
        trees = np.arange(n)[:, None]
        samples = np.arange(len(x32))[None, :]
        node = np.zeros((n, len(x32)), dtype=np.intp)
        for _ in range(self.max_nodes):  # validated: every step goes to a larger index
            child = left[trees, node]
            internal = child != TREE_LEAF
            if not internal.any():
                break
            feat = np.where(internal, feature[trees, node], 0)
            go_left = x32[samples, feat] <= threshold[trees, node]
            node = np.where(internal, np.where(go_left, child, right[trees, node]), node)
        return weights["value"][:n][trees, node].mean(axis=0)

    def to_onnx(self, weights: Mapping[str, np.ndarray]) -> Any:
        """An ONNX model (ai.onnx.ml TreeEnsembleClassifier, then ArgMax) equal to
        :meth:`predict_proba`: input ``input`` float32 (n, n_features), outputs ``label``
        int64 and ``probabilities`` float32 (n, n_classes). Leaf weights are divided by
        the tree count so the ensemble's sum is the mean; an empty forest is one leaf
        with the uniform distribution."""
        import onnx
        from onnx import TensorProto, helper

        attrs: dict[str, Any] = {k: [] for k in (
            "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
            "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
            "class_treeids", "class_nodeids", "class_ids", "class_weights")}
        n = int(weights["n_trees"][0])

        def leaf(tree: int, node: int, distribution: np.ndarray) -> None:
            attrs["nodes_modes"].append("LEAF")
            attrs["nodes_featureids"].append(0)
            attrs["nodes_values"].append(0.0)
            attrs["nodes_truenodeids"].append(0)
            attrs["nodes_falsenodeids"].append(0)
            for k, p in enumerate(distribution):
                attrs["class_treeids"].append(tree)
                attrs["class_nodeids"].append(node)
                attrs["class_ids"].append(k)
                attrs["class_weights"].append(float(p))

        if n == 0:
            attrs["nodes_treeids"].append(0)
            attrs["nodes_nodeids"].append(0)
            leaf(0, 0, np.full(self.n_classes, 1.0 / self.n_classes))
        for t in range(n):
            for i in range(int(weights["node_count"][t])):
                attrs["nodes_treeids"].append(t)
                attrs["nodes_nodeids"].append(i)
                left = int(weights["children_left"][t, i])
                if left == TREE_LEAF:
                    leaf(t, i, weights["value"][t, i] / n)
                else:
                    attrs["nodes_modes"].append("BRANCH_LEQ")
                    attrs["nodes_featureids"].append(int(weights["feature"][t, i]))
                    attrs["nodes_values"].append(float(weights["threshold"][t, i]))
                    attrs["nodes_truenodeids"].append(left)
                    attrs["nodes_falsenodeids"].append(int(weights["children_right"][t, i]))
        ensemble = helper.make_node(
            "TreeEnsembleClassifier", ["input"], ["ensemble_label", "probabilities"],
            domain="ai.onnx.ml", classlabels_int64s=list(range(self.n_classes)),
            post_transform="NONE", **attrs)
        # The label is the argmax of the probabilities (first on ties, as numpy's):
        # onnxruntime's own label rule for two classes thresholds class 1's score instead.
        argmax = helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)
        graph = helper.make_graph(
            [ensemble, argmax], "colearn_random_forest",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, self.n_features])],
            [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
             helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                           [None, self.n_classes])])
        # IR version 8 (opset 17's): onnx's newest IR is ahead of onnxruntime's
        model = helper.make_model(graph, ir_version=8, opset_imports=[
            helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
        onnx.checker.check_model(model)
        return model


def tree_to_arrays(tree: DecisionTreeClassifier,
                   layout: ForestLayout) -> tuple[dict[str, np.ndarray], int]:
    """A fitted scikit-learn tree as one slot of ``layout``'s arrays (leading axis
    dropped) and its node count: node arrays padded to ``max_nodes``, leaf distributions
    over all ``n_classes`` (a tree trained without some class gives it probability 0)."""
    t = tree.tree_
    count = int(t.node_count)
    if count > layout.max_nodes:
        raise ValueError(f"the tree has {count} nodes, more than max_nodes {layout.max_nodes}")
    empty = {k: v[0] for k, v in layout.empty().items() if k not in ("n_trees", "node_count")}
    out = {k: v.copy() for k, v in empty.items()}
    left = t.children_left[:count]
    is_leaf = left == TREE_LEAF
    out["children_left"][:count] = left
    out["children_right"][:count] = t.children_right[:count]
    out["feature"][:count] = np.where(is_leaf, TREE_UNDEFINED, t.feature[:count])
    out["threshold"][:count] = np.where(
        is_leaf, np.float32(TREE_UNDEFINED), _round_down_float32(t.threshold[:count]))
    raw = np.asarray(t.value[:count, 0, :], dtype=np.float64)
    totals = raw.sum(axis=1, keepdims=True)
    distribution = np.zeros((count, layout.n_classes))
    distribution[:, np.asarray(tree.classes_, dtype=np.intp)] = raw / totals
    out["value"][:count] = np.where(is_leaf[:, None], distribution, 0.0)
    return out, count


class ForestConfig(BaseModel):
    """The forest learner's hyperparameters (checked at construction)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_classes: int = Field(ge=2)
    trees_per_round: int = Field(2, ge=1)
    max_trees: int = Field(20, ge=1)
    max_depth: int | None = Field(4, ge=1, le=16)
    max_leaf_nodes: int | None = Field(None, ge=2)
    # int: a number of features, float: a fraction (sklearn tells them apart)
    max_features: Literal["sqrt", "log2"] | int | float | None = "sqrt"
    min_samples_leaf: int = Field(1, ge=1)
    bootstrap: bool = True

    @model_validator(mode="after")
    def _bounded(self) -> ForestConfig:
        if self.max_depth is None and self.max_leaf_nodes is None:
            raise ValueError("give max_depth or max_leaf_nodes: they bound the node count")
        if self.trees_per_round > self.max_trees:
            raise ValueError("trees_per_round cannot exceed max_trees")
        return self

    @property
    def max_nodes(self) -> int:
        bounds = []
        if self.max_depth is not None:
            bounds.append(2 ** (self.max_depth + 1) - 1)
        if self.max_leaf_nodes is not None:
            bounds.append(2 * self.max_leaf_nodes - 1)
        return min(bounds)


class RandomForestLearner(Learner):
    """colearn's growing random forest, with the forest as fixed-structure arrays.

    Each proposal adds ``trees_per_round`` new decision trees, each trained on a
    bootstrap sample of the learner's own training data (``max_features`` features tried
    per split, as a random forest does), to the current forest. The forest holds at most
    ``max_trees`` trees: when it is full, the OLDEST trees are dropped to make room
    (the forest is a sliding window over the most recent trees). Trees are bounded by
    ``max_depth`` and/or ``max_leaf_nodes``, which fixes the node capacity.

    The initial weights are the EMPTY forest, which predicts the uniform distribution
    (chosen over "the majority class" because it needs no data, so every learner has the
    same initial weights by construction).

    Labels are ``0 .. n_classes - 1``. Scores are functions of the predicted class
    probabilities: a name (``"brier"``, the default vote score, bounded and sensitive to
    small changes; ``"accuracy"``; ``"log_loss"``) or ``f(y_true, proba) -> float``
    (then give ``minimise_criterion``). Incoming weights are validated
    (:meth:`ForestLayout.validate`); malformed ones raise :class:`WeightsMismatchError`.
    """

    def __init__(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_vote: np.ndarray,
        y_vote: np.ndarray,
        x_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        *,
        n_classes: int,
        trees_per_round: int = 2,
        max_trees: int = 20,
        max_depth: int | None = 4,
        max_leaf_nodes: int | None = None,
        max_features: Literal["sqrt", "log2"] | int | float | None = "sqrt",  # noqa: PYI041
        min_samples_leaf: int = 1,
        bootstrap: bool = True,
        vote_criterion: str | ScoreFn = "brier",
        minimise_criterion: bool | None = None,
        test_criterion: str | ScoreFn | None = None,
        seed: int = 0,
    ) -> None:
        self.config = ForestConfig(
            n_classes=n_classes, trees_per_round=trees_per_round, max_trees=max_trees,
            max_depth=max_depth, max_leaf_nodes=max_leaf_nodes, max_features=max_features,
            min_samples_leaf=min_samples_leaf, bootstrap=bootstrap)
        self.x_train, self.y_train, self.x_vote, self.y_vote, self.x_test, self.y_test = \
            _check_sets(x_train, y_train, x_vote, y_vote, x_test, y_test, allow_empty_test=True)
        for name, y in (("train", self.y_train), ("vote", self.y_vote),
                        ("test", self.y_test if self.y_test is not None else np.zeros(0))):
            if y.size and (y.min() < 0 or y.max() >= n_classes):
                raise ValueError(f"{name} labels must lie in 0..{n_classes - 1}")
        self.layout = ForestLayout(max_trees, self.config.max_nodes,
                                   self.x_train.shape[1], n_classes)
        self.classes = np.arange(n_classes)
        for criterion in (vote_criterion, test_criterion):
            if isinstance(criterion, str) and criterion in ("mse", "mae", "r2"):
                raise ScoreError(f"{criterion!r} is not a classification score of probabilities")
        self._vote_criterion = _resolve(vote_criterion, "proba")
        self._test_criterion = self._vote_criterion if test_criterion is None \
            else _resolve(test_criterion, "proba")
        self.minimise_criterion = _direction(self._vote_criterion, minimise_criterion)
        self._rng = np.random.default_rng(int(seed))
        self._weights = self.layout.empty()
        self.vote_score: float = self._score(self._weights, self.x_vote, self.y_vote,
                                             self._vote_criterion)

    # ------------------------------------------------------------------ scoring

    def _score(self, weights: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray,
               criterion: _Criterion) -> float:
        proba = self.layout.predict_proba(weights, x)
        output = np.argmax(proba, axis=1) if criterion.output == "predict" else proba
        return float(criterion.fn(y, output, self.classes))

    def predict_proba(self, weights: WeightsLike, x: np.ndarray) -> np.ndarray:
        """Class probabilities of (validated) ``weights`` on ``x``."""
        return self.layout.predict_proba(self.layout.validate(weights), x)

    def evaluate(self, weights: WeightsLike, x: np.ndarray, y: np.ndarray,
                 criterion: str | ScoreFn | None = None) -> float:
        """Scores ``weights`` on any ``(x, y)`` with ``criterion`` (default: the vote
        criterion)."""
        resolved = self._vote_criterion if criterion is None else _resolve(criterion, "proba")
        return self._score(self.layout.validate(weights), np.asarray(x), np.asarray(y),
                           resolved)

    # ------------------------------------------------------------------ training

    def _grow_tree(self) -> DecisionTreeClassifier:
        cfg = self.config
        n = len(self.y_train)
        rows = self._rng.integers(0, n, n) if cfg.bootstrap else np.arange(n)
        tree = DecisionTreeClassifier(
            max_depth=cfg.max_depth, max_leaf_nodes=cfg.max_leaf_nodes,
            max_features=cfg.max_features, min_samples_leaf=cfg.min_samples_leaf,
            random_state=int(self._rng.integers(0, 2**31 - 1)))
        return tree.fit(self.x_train[rows], self.y_train[rows])

    def grow(self, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A new forest: ``weights`` plus ``trees_per_round`` trees trained on this
        learner's data, the oldest dropped beyond ``max_trees``. ``weights`` is not
        changed."""
        forest = _copy_weights(weights)
        for _ in range(self.config.trees_per_round):
            slot, count = tree_to_arrays(self._grow_tree(), self.layout)
            n = int(forest["n_trees"][0])
            if n == self.layout.max_trees:  # full: shift out the oldest tree
                for name in FOREST_NAMES[1:]:
                    forest[name][:-1] = forest[name][1:]
                n -= 1
            for name, array in slot.items():
                forest[name][n] = array
            forest["node_count"][n] = count
            forest["n_trees"][0] = n + 1
        return forest

    # ------------------------------------------------------------------ the MLI

    def mli_propose_weights(self) -> Weights:
        return Weights(weights=self.grow(self._weights), training_summary=TrainingSummary())

    def mli_test_weights(self, weights: Weights) -> ProposedWeights:
        checked = self.layout.validate(weights)
        vote_score = self._score(checked, self.x_vote, self.y_vote, self._vote_criterion)
        test_score = 0.0 if self.x_test is None or self.y_test is None \
            or len(self.y_test) == 0 else \
            self._score(checked, self.x_test, self.y_test, self._test_criterion)
        return self._tested(weights, vote_score, test_score)

    def mli_accept_weights(self, weights: Weights) -> None:
        self._weights = _copy_weights(self.layout.validate(weights))
        self.vote_score = self._score(self._weights, self.x_vote, self.y_vote,
                                      self._vote_criterion)

    def mli_get_current_weights(self) -> Weights:
        return Weights(weights=_copy_weights(self._weights))

    def mli_get_current_model(self) -> ColearnModel:
        """The forest as an ONNX TreeEnsembleClassifier (:meth:`ForestLayout.to_onnx`)
        if the ``onnx`` package is installed; otherwise ``PICKLE_WEIGHTS_ONLY`` with the
        weights dict (nothing is pickled) and a logged warning."""
        try:
            model = self.layout.to_onnx(self._weights)
        except ImportError as exc:
            log.warning("onnx is not installed (%s): returning the forest's arrays only", exc)
            model = None
        return current_model(model, lambda: _copy_weights(self._weights))


def forest_score_fn(layout: ForestLayout, x: np.ndarray, y: np.ndarray,
                    criterion: str = "accuracy") -> Callable[[Any], float]:
    """``weights -> score`` on ``(x, y)``, for an example's global test score."""
    resolved = _resolve(criterion, "proba")

    def score(weights: Any) -> float:
        proba = layout.predict_proba(layout.validate(weights), x)
        output = np.argmax(proba, axis=1) if resolved.output == "predict" else proba
        return float(resolved.fn(np.asarray(y), output, np.arange(layout.n_classes)))

    return score
