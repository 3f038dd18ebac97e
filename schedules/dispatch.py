"""Which schedule a kernel gets when the model's C is generated.

The code generator calls `schedule_for(func)`. By default a tunable kernel gets its template's
default config (SIMD micro-kernels) and every other kernel `default_schedule`. Inside
`with apply_history_best(log):` (schedules.tuning_log) a tuned workload gets the best config
measured for it; inside `with use_configs({...})` explicit configs per workload key win; inside
`with use_default_schedules():` every kernel gets the plain TE default schedule (the untuned
baseline the tuner compares against); inside `with use_int8_weights():` untuned kernels take
the int8-weight default config instead of the int16-weight one (half the flash, a little slower).
"""

from __future__ import annotations

import contextlib
import threading

from tvm import tirx

from schedules.default import default_schedule
from schedules.space import (
    Scheduled,
    int8_weight_config,
    kernel_info,
    schedule_kernel,
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
def use_default_schedules():
    """Schedule every kernel with schedules.default.default_schedule (no SIMD templates)."""
    _stack().append(("default", None))
    try:
        yield
    finally:
        _stack().pop()


@contextlib.contextmanager
def use_int8_weights():
    """Untuned kernels keep their weights int8 in flash (`space.int8_weight_config`)."""
    _stack().append(("int8_weights", None))
    try:
        yield
    finally:
        _stack().pop()


def schedule_for(func: tirx.PrimFunc) -> Scheduled:
    """The scheduled kernel for the innermost active dispatch context."""
    int8_weights = False
    for kind, value in reversed(_stack()):
        if kind == "default":
            return Scheduled(default_schedule(func))
        if kind == "int8_weights":
            int8_weights = True
            continue
        key = workload_key(func)
        if key is not None and key in value:
            return schedule_kernel(func, value[key])
    return schedule_kernel(func, int8_weight_config(kernel_info(func)[0]) if int8_weights else None)
