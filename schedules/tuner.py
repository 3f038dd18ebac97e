"""Search strategies over a task's knob space: XGBoost-ranked, random, and grid.

`XGBTuner` fits an XGBoost ranking model (`rank:pairwise`) on the measured configs (features:
the knob values plus the workload's sizes; label: faster is better), ranks every unmeasured
config, and takes the top of the ranking, except for an epsilon share of each batch drawn at
random (exploration), and the best-ranked configs one knob away from the fastest measured one
fill half of each batch (a local step, so the search refines around its incumbent). Before it
has enough measurements it takes random picks. Failed measurements rank last. Every tuner
measures the seed configs first (`space.seed_configs`: the default and its int16-weight variant).
"""

from __future__ import annotations

import random

import numpy as np

from schedules.space import config_key, features, seed_configs, space

MIN_TRAIN = 3


class BaseTuner:
    def __init__(self, op: str, workload: str | None = None, seed: int = 0) -> None:
        self.op = op
        self.workload = workload
        self.space = space(op)
        self.rng = random.Random(seed)
        self.xs: list[list[float]] = []
        self.ys: list[float | None] = []
        self.seen: set[str] = set()

    def update(self, config: dict, cost: float | None) -> None:
        key = config_key(config)
        if key in self.seen:
            return
        self.seen.add(key)
        self.xs.append(features(self.op, config, self.workload))
        self.ys.append(cost)

    @property
    def best_cost(self) -> float | None:
        valid = [y for y in self.ys if y is not None]
        return min(valid) if valid else None

    def _candidates(self, exclude: set[str]) -> list[dict]:
        return [c for c in self.space if config_key(c) not in self.seen and config_key(c) not in exclude]

    def next_batch(self, n: int, exclude: set[str] = frozenset()) -> list[dict]:
        """Up to `n` configs not measured yet nor in `exclude`: the seed configs first, then the search's."""
        pool = self._candidates(exclude)
        free = {config_key(c) for c in pool}
        picked = [c for c in seed_configs(self.op) if config_key(c) in free][:n]
        taken = {config_key(c) for c in picked}
        rest = [c for c in pool if config_key(c) not in taken]
        return picked + (self._propose(rest, n - len(picked)) if rest and n > len(picked) else [])

    def _propose(self, pool: list[dict], n: int) -> list[dict]:
        raise NotImplementedError


class RandomTuner(BaseTuner):
    def _propose(self, pool, n):
        self.rng.shuffle(pool)
        return pool[:n]


class GridTuner(BaseTuner):
    def _propose(self, pool, n):
        return pool[:n]


class XGBTuner(BaseTuner):
    def __init__(self, op, workload=None, seed=0, epsilon: float = 0.1) -> None:
        super().__init__(op, workload, seed)
        self.epsilon = epsilon
        self.seed = seed
        self._keys: list[tuple] = []

    def _propose(self, pool, n):
        valid = [(x, y) for x, y in zip(self.xs, self.ys) if y is not None]
        if len(valid) < MIN_TRAIN or len({y for _, y in valid}) < 2:
            self.rng.shuffle(pool)
            return pool[:n]
        scores = self._predict(pool)
        order = [pool[i] for i in np.argsort(-scores, kind="stable")]
        # local step: the best-ranked config one knob away from the fastest measured one goes first
        incumbent = self._incumbent()
        near = [c for c in order if incumbent is not None and sum(c[k] != incumbent[k] for k in c) == 1]
        near = near[: (n + 1) // 2]
        order = near + [c for c in order if c not in near]
        n_explore = int(round(self.epsilon * n))
        exploit = order[: n - n_explore]
        rest = order[len(exploit):]
        self.rng.shuffle(rest)
        return exploit + rest[:n_explore]

    def _incumbent(self) -> dict | None:
        valid = [(y, key) for y, key in zip(self.ys, self._keys) if y is not None]
        return dict(min(valid)[1]) if valid else None

    def update(self, config: dict, cost: float | None) -> None:
        if config_key(config) not in self.seen:
            self._keys.append(tuple(sorted(config.items())))
        super().update(config, cost)

    def _predict(self, pool: list[dict]) -> np.ndarray:
        import xgboost as xgb

        xs = np.array(self.xs, dtype=np.float64)
        ys = np.array([-np.log(y) if y is not None else -1e9 for y in self.ys])
        # rank labels: higher is better (faster); failures get the lowest grade
        order = np.argsort(np.argsort(ys))
        labels = (order * 31 // max(1, len(ys) - 1)).astype(np.int32)
        dtrain = xgb.DMatrix(xs, label=labels)
        dtrain.set_group([len(ys)])
        params = {"objective": "rank:pairwise", "eta": 0.3, "max_depth": 4, "min_child_weight": 0,
                  "seed": self.seed, "verbosity": 0, "nthread": 1,
                  "lambdarank_pair_method": "mean", "lambdarank_num_pair_per_sample": 8}
        booster = xgb.train(params, dtrain, num_boost_round=40)
        test = xgb.DMatrix(np.array([features(self.op, c, self.workload) for c in pool], dtype=np.float64))
        return booster.predict(test)


def make_tuner(kind: str, op: str, workload: str | None = None, seed: int = 0) -> BaseTuner:
    kinds = {"xgb": XGBTuner, "random": RandomTuner, "grid": GridTuner}
    if kind not in kinds:
        raise ValueError(f"unknown tuner {kind!r}; choose from {', '.join(kinds)}")
    return kinds[kind](op, workload, seed=seed)
