"""Which schedule a kernel gets when the model's C is generated.

The code generator calls `schedule_for(func)`. By default a tunable kernel gets its template's
default config (SIMD micro-kernels) and every other kernel `default_schedule`. Inside
`with apply_history_best(log):` (schedules.tuning_log) a tuned workload gets the best config
measured for it; inside `with use_configs({...})` explicit configs per workload key win; inside
`with use_weights("int16"):` conv / dense kernels not configured by an inner context store
their weights as int16 (the default keeps them int8); inside `with use_default_schedules():`
every kernel gets the plain TE default schedule (the untuned baseline the tuner compares
against).
"""

from __future__ import annotations

import contextlib
import threading

from tvm import tirx

from schedules.default import default_schedule
from schedules.space import (
    WEIGHTS,
    Scheduled,
    int16_weight_config,
    kernel_info,
    schedule_kernel,
    template_config,
    workload_key,
)

_STATE = threading.local()


def _stack() -> list:
    if not hasattr(_STATE, "stack"):
        _STATE.stack = []
    return _STATE.stack


@contextlib.contextmanager
def use_configs(configs: dict[str, dict]):
    """Schedule the workloads named in `configs` (workload key -> config) with those configs."""
    _stack().append(("configs", configs))
    try:
        yield
    finally:
        _stack().pop()


@contextlib.contextmanager
def use_weights(weights: str):
    """Store conv / dense weights as `weights` ("int8", the default, or "int16") in the block."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    _stack().append(("weights", weights))
    try:
        yield
    finally:
        _stack().pop()


@contextlib.contextmanager
def use_default_schedules():
    """Schedule every kernel with schedules.default.default_schedule (no SIMD templates)."""
    _stack().append(("default", None))
    try:
        yield
    finally:
        _stack().pop()


def _chosen(func: tirx.PrimFunc) -> tuple[bool, dict | None]:
    """(plain default schedule?, explicit config or None) for the innermost active context."""
    for kind, value in reversed(_stack()):
        if kind == "default":
            return True, None
        key = workload_key(func)
        if kind == "weights":
            config = int16_weight_config(kernel_info(func)[0]) if value == "int16" and key is not None else None
            if config is not None:
                return False, config
        elif key is not None and key in value:
            return False, value[key]
    return False, None


def schedule_for(func: tirx.PrimFunc) -> Scheduled:
    """The scheduled kernel for the innermost active dispatch context."""
    plain, config = _chosen(func)
    return Scheduled(default_schedule(func)) if plain else schedule_kernel(func, config)


def config_for(func: tirx.PrimFunc) -> dict | None:
    """The template config `schedule_for` gives `func` (None: the plain default schedule)."""
    plain, config = _chosen(func)
    return None if plain else template_config(func, config)
