"""Keep some kernels' weights int8 so that a model's weights stay within a flash budget.

The conv/dense templates' int16 path (`weights="int16"`, or a tuned simd=2 config) stores weights
as int16 pairs (twice the flash). When the model's weights would pass the budget, the workloads
that gain least per byte (fewest MACs per saved weight byte) go back to the default int8-weight
config until the weights fit.
"""

from __future__ import annotations

from schedules.dispatch import schedule_for
from schedules.space import int8_weight_config, kernel_info, workload_key
from tvm_tinyml.lower import Lowered
from tvm_tinyml.macs import op_macs


def int8_weight_configs(lowered: Lowered, excess_bytes: int) -> dict[str, dict]:
    """Workload key -> int8-weight config for the workloads to switch so `excess_bytes` are saved
    (under the active dispatch context: tuned configs count as what they store)."""
    gains: dict[str, list] = {}  # key -> [saved bytes, MACs, config]
    for op in lowered.graph.ops:
        func = lowered.kernels[op.kernel]
        key, config = workload_key(func), int8_weight_config(kernel_info(func)[0])
        if key is None or config is None or op.inputs[1] not in lowered.constants:
            continue
        weight = lowered.constants[op.inputs[1]]
        transform = schedule_for(func).transforms.get(1)
        saved = (transform(weight).nbytes if transform else weight.nbytes) - weight.nbytes
        if saved > 0:
            entry = gains.setdefault(key, [0, 0, config])
            entry[0] += saved
            entry[1] += op_macs(lowered.graph, op)
    chosen: dict[str, dict] = {}
    for key, (saved, macs, config) in sorted(gains.items(), key=lambda kv: kv[1][1] / kv[1][0]):
        if excess_bytes <= 0:
            break
        chosen[key] = config
        excess_bytes -= saved
    return chosen
