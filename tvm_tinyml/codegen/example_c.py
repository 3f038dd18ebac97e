"""The example application written beside an export: fill the inputs, run, print the outputs.

One generator serves two programs: `example_main.c` (hosted C, only the model's public header
and stdio) and a bare-metal project's `app_main.c` (the same body, printing over the board's
UART through `board.h`). The inputs are a fixed pseudo-random pattern (a 32-bit LCG) that
`example_inputs` reproduces in Python, so a test can run the same inputs through the reference.
"""

from __future__ import annotations

import re

import numpy as np

from tvm_tinyml.errors import TinyMLError

LCG_SEED = 1
LCG_MULTIPLIER, LCG_INCREMENT = 1664525, 1013904223

# dtype -> (C type, C expression of the LCG byte `b` (0..255), numpy conversion of the bytes).
_ELEMENT = {
    "int8": ("int8_t", "(int8_t)b", lambda b: b.astype(np.uint8).view(np.int8)),
    "uint8": ("uint8_t", "(uint8_t)b", lambda b: b.astype(np.uint8)),
    "int16": ("int16_t", "(int16_t)(int8_t)b", lambda b: b.astype(np.uint8).view(np.int8).astype(np.int16)),
    "int32": ("int32_t", "(int32_t)(int8_t)b", lambda b: b.astype(np.uint8).view(np.int8).astype(np.int32)),
    "float32": ("float", "((float)b - 128.0f) / 128.0f", lambda b: ((b.astype(np.float32) - 128.0) / 128.0).astype(np.float32)),
}
_PRINT = {"int8": "print_int", "uint8": "print_int", "int16": "print_int", "int32": "print_int", "float32": "print_float"}

_HOSTED_PRELUDE = """#include <stdio.h>

static uint8_t arena[{prefix}_ARENA_BYTES] __attribute__((aligned(16)));

static void print_text(const char *text) {{ fputs(text, stdout); }}
static void print_int(long value) {{ printf("%ld", value); }}
"""

_HOSTED_FLOAT = """static void print_float(float value) { printf("%.9g", (double)value); }"""

_BOARD_PRELUDE = """#include <string.h>

#include "board.h"

static uint8_t arena[{prefix}_ARENA_BYTES] TINYML_ARENA_ATTRIBUTES;

static void print_text(const char *text) {{ board_write((const uint8_t *)text, (uint32_t)strlen(text)); }}

static void print_int(long value) {{
  char digits[24];
  int n = 0;
  unsigned long magnitude = value < 0 ? 0ul - (unsigned long)value : (unsigned long)value;
  do {{
    digits[n++] = (char)('0' + magnitude % 10u);
    magnitude /= 10u;
  }} while (magnitude != 0u);
  if (value < 0) digits[n++] = '-';
  char text[24];
  for (int i = 0; i < n; ++i) text[i] = digits[n - 1 - i];
  text[n] = '\\0';
  print_text(text);
}}
"""

_BOARD_FLOAT = """/* Six decimals, truncated: enough to read scores (the UART has no printf). */
static void print_float(float value) {
  if (value < 0.0f) print_text("-");
  float magnitude = value < 0.0f ? -value : value;
  long whole = (long)magnitude;
  long micros = (long)((magnitude - (float)whole) * 1e6f);
  print_int(whole);
  print_text(".");
  for (long scale = 100000; scale > 1 && micros < scale; scale /= 10) print_text("0");
  print_int(micros);
}"""


def _c_dtype(spec: dict) -> tuple[str, str]:
    if spec["dtype"] not in _ELEMENT:
        raise TinyMLError(f"example_main.c: model entry {spec['name']!r} has dtype {spec['dtype']}, which the example cannot fill")
    ctype, expr, _ = _ELEMENT[spec["dtype"]]
    return ctype, expr


def _fill_function(name: str, inputs: list[dict]) -> str:
    lines = [
        "/* A fixed pseudo-random pattern (a 32-bit LCG); replace it with your sensor data. */",
        "static uint32_t next_byte(uint32_t *state) {",
        f"  *state = *state * {LCG_MULTIPLIER}u + {LCG_INCREMENT}u;",
        "  return *state >> 24;",
        "}",
        "",
        "static void fill_inputs(void) {",
        f"  uint32_t state = {LCG_SEED}u;",
    ]
    for i, spec in enumerate(inputs):
        ctype, expr = _c_dtype(spec)
        count = int(np.prod(spec["shape"]))
        lines += [
            f"  {ctype} *input{i} = ({ctype} *){name}_input(arena, {i});",
            f"  for (uint32_t i = 0; i < {count}u; ++i) {{",
            "    uint32_t b = next_byte(&state);",
            f"    input{i}[i] = {expr};",
            "  }",
        ]
    return "\n".join(lines + ["}"])


def _print_function(name: str, outputs: list[dict]) -> str:
    lines = ["static void print_outputs(void) {"]
    for i, spec in enumerate(outputs):
        ctype, _ = _c_dtype(spec)
        count = int(np.prod(spec["shape"]))
        cast = "(long)" if _PRINT[spec["dtype"]] == "print_int" else ""
        lines += [
            f"  const {ctype} *output{i} = (const {ctype} *){name}_output(arena, {i});",
            f'  print_text("output {i} ({spec["dtype"]}, {count} values):");',
            f"  for (uint32_t i = 0; i < {count}u; ++i) {{",
            '    print_text(" ");',
            f"    {_PRINT[spec['dtype']]}({cast}output{i}[i]);",
            "  }",
            '  print_text("\\n");',
        ]
    top = outputs[0]
    lines += [
        "  uint32_t top = 0;",
        f"  for (uint32_t i = 1; i < {int(np.prod(top['shape']))}u; ++i) {{",
        "    if (output0[i] > output0[top]) top = i;",
        "  }",
        '  print_text("top class: ");',
        "  print_int((long)top);",
        '  print_text("\\n");',
        "}",
    ]
    return "\n".join(lines)


def _hosted_entry(name: str) -> str:
    return f"""int main(void) {{
  fill_inputs();
  int status = {name}_run(arena);
  if (status != 0) {{
    printf("{name}_run returned %d\\n", status);
    return 1;
  }}
  print_outputs();
  return 0;
}}"""


def _board_entry(name: str) -> str:
    return f"""/* The firmware's entry (cortex_m.c calls it on the process stack when built with
 * -DTINYML_ENTRY=tinyml_app_main): one inference, its outputs and cycles on the UART. */
void tinyml_app_main(void) {{
  fill_inputs();
  board_counter_start();
  tinyml_marker_begin();
  int status = {name}_run(arena);
  tinyml_marker_end();
  tinyml_counts_t counts = board_counter_stop();
  if (status != 0) {{
    print_text("{name}_run failed\\n");
    board_exit(1);
  }}
  print_outputs();
  if (counts.valid & 1u) {{
    print_text("cycles: ");
    print_int((long)counts.cycles);
    print_text("\\n");
  }}
  board_exit(0);
}}"""


def example_source(meta: dict, board: bool = False) -> str:
    """C of the example: hosted `main` (board False) or the firmware's `tinyml_app_main`."""
    name = meta["model"]
    prefix = name.upper()
    which = "the bare-metal application" if board else "example"
    header = (
        f'/* Generated by tvm-tinyml: {which} for model "{name}". Fills the inputs, runs the model,\n'
        f" * prints every output value and the top class of output 0. */\n"
        f'#include "{name}.h"\n\n'
    )
    prelude = [(_BOARD_PRELUDE if board else _HOSTED_PRELUDE).format(prefix=prefix)]
    if any(spec["dtype"] == "float32" for spec in meta["outputs"]):
        prelude.append(_BOARD_FLOAT if board else _HOSTED_FLOAT)
    entry = _board_entry(name) if board else _hosted_entry(name)
    body = [*prelude, _fill_function(name, meta["inputs"]), _print_function(name, meta["outputs"]), entry]
    return header + "\n\n".join(part.strip("\n") for part in body) + "\n"


def example_inputs(meta: dict) -> list[np.ndarray]:
    """The inputs the example's `fill_inputs` writes, as arrays in the entry's dtypes."""
    state, inputs = LCG_SEED, []
    for spec in meta["inputs"]:
        count = int(np.prod(spec["shape"]))
        raw = np.empty(count, np.int64)
        for i in range(count):
            state = (state * LCG_MULTIPLIER + LCG_INCREMENT) & 0xFFFFFFFF
            raw[i] = state >> 24
        inputs.append(_ELEMENT[spec["dtype"]][2](raw).reshape(spec["shape"]))
    return inputs


def parse_example_output(text: str, meta: dict) -> list[np.ndarray]:
    """The outputs an example printed (its `output i (...): v v v` lines)."""
    outputs = []
    for i, spec in enumerate(meta["outputs"]):
        match = re.search(rf"^output {i} \([^)]*\):((?: \S+)*)\s*$", text, re.M)
        if match is None:
            raise ValueError(f"no 'output {i}' line in the example's output:\n{text}")
        values = np.array(match.group(1).split(), dtype=np.float64 if spec["dtype"] == "float32" else np.int64)
        outputs.append(values.astype(spec["dtype"]).reshape(spec["shape"]))
    return outputs
