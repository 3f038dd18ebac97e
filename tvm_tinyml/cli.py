"""`tvm-tinyml` command line: compile, verify, memory, run, tune.

Exit codes: 0 success, 1 a failed check (verify mismatch), 2 bad input (one line on stderr),
3 an internal error (one line; TVM_TINYML_DEBUG=1 shows the traceback). With --json the last
stdout line is one JSON object, on failure `{"error", "exit_code", "command", "model"}`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Callable

from tvm_tinyml.errors import TinyMLError
from tvm_tinyml.quiet import DEBUG_ENV
from tvm_tinyml.targets import TARGETS

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


# ---------------------------------------------------------------- argument types


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse



def _overhead(text: str) -> float:
    """A finite fraction in [0, 10] (0.2 = 20% extra MACs)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 <= value <= 10.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 10")
    return value


def _patch(text: str) -> str:
    from tvm_tinyml.patch_plan import parse_patch

    try:
        parse_patch(text)
    except TinyMLError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _output_dir(text: str) -> str:
    """A directory we can write into: created up front (with its parents) if missing."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty output directory path")
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{text}: cannot create the directory: {err.strerror}") from None
    if not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: the directory is not writable")
    return text


def _output_file(text: str) -> str:
    """A file path we can write: its directory is created if missing, and the file opened once."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty output file path")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{text}: cannot write the file: {err.strerror}") from None
    if not existed:
        path.unlink()
    return text


def _tuning_log(text: str, must_exist: bool) -> str:
    from schedules.tuning_log import check_log

    path = Path(text)
    if not path.exists():
        if must_exist:
            raise argparse.ArgumentTypeError(f"{text} does not exist (write one with `tvm-tinyml tune`)")
        _output_file(text)
        return text
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    try:
        check_log(path)
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{text}: cannot read: {err.strerror}") from None
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text}: {err}") from None
    return text


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and a JSON object under --json) with exit 2."""

    def error(self, message: str):
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def _build_options(args: argparse.Namespace) -> dict:
    """`build` keyword options given on the command line."""
    options = {"patch": args.patch, "patch_mac_overhead": args.patch_mac_overhead, "weights": args.weights}
    for name in ("float_io", "tuning_log"):
        if getattr(args, name, None):
            options[name] = getattr(args, name)
    return options


def _cmd_compile(args: argparse.Namespace) -> int:
    from tvm_tinyml.builder import build
    from tvm_tinyml.project import check_project, write_project

    if args.project:
        check_project(args.project, args.target, args.output)
    artifact = build(args.model, target=args.target, **_build_options(args))
    if args.project:
        out = write_project(artifact, args.project, args.output)
        print(f"wrote the {args.project} project to {out}: `make -C {out}` builds it (see {out / 'README.md'})")
    else:
        out = artifact.export(args.output)
        print(f"wrote {', '.join(sorted(artifact.sources))} and the build files to {out}")
    memory = artifact.memory
    print(f"arena {memory.arena_bytes:,} B, weights {memory.flash_bytes:,} B on {memory.target}")
    if args.json:
        print(json.dumps({"model": artifact.name, "target": memory.target, "output": str(out), "files": sorted(artifact.sources),
                          "arena_bytes": memory.arena_bytes, "flash_bytes": memory.flash_bytes}))
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from tvm_tinyml.verify import verify

    result = verify(args.model, target=args.target, inputs=args.inputs, seed=args.seed, **_build_options(args))
    verdict = "bit-exact" if result.bit_exact else f"max |diff| {result.max_abs_diff} (tolerance {result.tolerance})"
    print(
        f"{result.model}: {result.inputs} random inputs vs {result.reference}: {verdict}; "
        f"{result.mismatched_inputs} inputs differ"
    )
    if args.json:
        print(json.dumps(result.to_dict()))
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED


def _cmd_memory(args: argparse.Namespace) -> int:
    from tvm_tinyml.builder import build

    from tvm_tinyml.reference import tflm_arena_bytes
    from tvm_tinyml.tvm_plan import tvm_plan_bytes

    artifact = build(args.model, target=args.target, **_build_options(args))
    memory = artifact.memory
    if args.plot:
        from tvm_tinyml.plot import plot_arena

        plot_arena(memory, args.plot)
    report = memory.to_dict()
    report["tflm_arena_bytes"] = tflm_arena_bytes(args.model)["total"] if artifact.metadata["format"] == "tflite" else None
    report["tvm_default_bytes"] = tvm_plan_bytes(artifact.modules["imported"])
    if args.json:
        if not args.tensors:
            del report["tensors"]
        print(json.dumps(report))
    else:
        print(memory.table())
        print(f"\n  TFLite Micro arena: {report['tflm_arena_bytes'] or 'n/a'} B; TVM default plan: {report['tvm_default_bytes']:,} B")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from tvm_tinyml.run import run_on_board

    result = run_on_board(
        args.model, args.board, inputs=args.inputs, seed=args.seed, serial=args.serial, target=args.target, **_build_options(args)
    )
    print(result.summary())
    if args.json:
        print(json.dumps(result.to_dict()))
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED


def _cmd_profile(args: argparse.Namespace) -> int:
    from tvm_tinyml.profile import profile_on_board

    result = profile_on_board(args.model, args.board, seed=args.seed, serial=args.serial, target=args.target, **_build_options(args))
    print(result.table())
    if args.json:
        print(json.dumps(result.to_dict()))
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED


def _cmd_tune(args: argparse.Namespace) -> int:
    from tvm_tinyml.tune import tune

    result = tune(args.model, args.board, trials=args.trials, log_path=args.log, tuner=args.tuner, progress=True,
                  workers=args.workers, serials=args.serial, ray_address=args.ray, sram_budget=args.sram_budget,
                  flash_budget=args.flash_budget, pareto=args.pareto)
    print(
        f"{result.model} on {result.board}: {result.trials} trials over {result.tasks} tasks; cycles per inference "
        f"{result.default_cycles:,} (default schedules) -> {result.tuned_cycles:,} (tuned: peak {result.peak_bytes:,} B "
        f"of {result.sram_budget:,}, flash {result.flash_bytes:,} B of {result.flash_budget:,}); log {args.log}"
    )
    if args.json:
        print(json.dumps(result.to_json()))
    return EXIT_OK


class _VersionAction(argparse.Action):
    """`--version`: print the package, TVM and toolchain versions, then exit."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the package, TVM and toolchain versions")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from tvm_tinyml.versions import version_report

        print(version_report())
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tvm-tinyml", description="Compile int8 models to standalone C for Cortex-M.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    targets = sorted(TARGETS)

    p = sub.add_parser("compile", help="compile a model to C sources")
    p.add_argument("model", help=".tflite or .onnx (QDQ) model")
    p.add_argument("--target", default="stm32f746", choices=targets)
    p.add_argument("-o", "--output", required=True, type=_output_dir, help="output directory")
    p.add_argument("--project", choices=["qemu", "stm32f746"], help="write a complete bare-metal project (Makefile, startup, linker script, app)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("verify", help="run the generated C on the host against the reference interpreter")
    p.add_argument("model")
    p.add_argument("--target", default="host", choices=targets)
    p.add_argument("--inputs", type=_whole_number(1), default=20, help="number of random inputs (default 20)")
    p.add_argument("--seed", type=_whole_number(0), default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("memory", help="print the memory report")
    p.add_argument("model")
    p.add_argument("--target", default="stm32f746", choices=targets)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--tensors", action="store_true", help="with --json, include the per-tensor table")
    p.add_argument("--plot", metavar="FILE.png", type=_output_file, help="draw the arena over time")
    p.set_defaults(func=_cmd_memory)
    for command in sub.choices.values():
        command.add_argument(
            "--float-io", action="store_true", help="keep float inputs/outputs of float-IO models (default: int8 entry)"
        )

    p = sub.add_parser("run", help="build, flash and run a model on a board; compare with the reference")
    p.add_argument("model")
    p.add_argument("--board", required=True, choices=["qemu-m7", "qemu-m4", "stm32f746", "host"])
    p.add_argument("--serial", help="serial port of a real board, e.g. /dev/ttyACM0")
    p.add_argument("--target", choices=targets, help="an emulated board takes this target's SRAM and flash limits (same core)")
    p.add_argument("--inputs", type=_whole_number(1), default=5, help="number of random inputs (default 5)")
    p.add_argument("--seed", type=_whole_number(0), default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("profile", help="run one inference on a board and count every layer (instructions, cycles, MACs)")
    p.add_argument("model")
    p.add_argument("--board", required=True, choices=["qemu-m7", "qemu-m4", "stm32f746"])
    p.add_argument("--serial", help="serial port of a real board, e.g. /dev/ttyACM0")
    p.add_argument("--target", choices=targets, help="an emulated board takes this target's SRAM and flash limits (same core)")
    p.add_argument("--seed", type=_whole_number(0), default=0, help="seed of the random input")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=_cmd_profile)

    p = sub.add_parser("tune", help="autotune the model's kernels on a board; append every measurement to a log")
    p.add_argument("model")
    p.add_argument("--board", required=True, choices=["qemu-m7", "qemu-m4", "stm32f746"])
    p.add_argument("--trials", type=_whole_number(1), default=300, help="measurements in all, counting those already in the log")
    p.add_argument("--log", required=True, metavar="F", type=lambda t: _tuning_log(t, must_exist=False),
                   help="tuning log (JSON lines; appended; resumed)")
    p.add_argument("--tuner", default="xgb", choices=["xgb", "random", "grid"])
    p.add_argument("--sram-budget", type=_whole_number(1), metavar="BYTES", help="most peak SRAM (arena) of the tuned build (default: the target's SRAM)")
    p.add_argument("--flash-budget", type=_whole_number(1), metavar="BYTES", help="most flash (weights) of the tuned build (default: the target's flash)")
    p.add_argument("--workers", type=_whole_number(1), default=1, metavar="N", help="measure on N emulated boards at once (default 1)")
    p.add_argument("--serial", action="append", metavar="PORT", help="serial port of an attached board; repeat for one worker per board")
    p.add_argument("--ray", metavar="ADDRESS|auto", help="run each worker as a Ray actor on this cluster (pip install 'tvm-tinyml[distributed]')")
    p.add_argument("--pareto", metavar="FILE.png", type=_output_file, help="measure builds along the flash front and plot latency / flash / SRAM")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=_cmd_tune)

    for name, command in sub.choices.items():
        if name == "tune":
            continue
        command.add_argument(
            "--patch", default="off", metavar="auto|off|K,N", type=_patch,
            help="patch-based inference: auto, off (default), or K,N = the first K layers in NxN patches (also K,NxM)",
        )
        command.add_argument(
            "--patch-mac-overhead", type=_overhead, default=0.20, metavar="X",
            help="with --patch auto: the most extra MACs allowed (default 0.20 = 20%%)",
        )
        command.add_argument(
            "--weights", default="int8", choices=["int8", "int16"],
            help="conv / dense weights in flash: int8 (default, the model's own size) or int16 (faster, about 2x flash)",
        )
        if name in ("compile", "run", "verify", "profile"):
            command.add_argument("--tuning-log", metavar="F", type=lambda t: _tuning_log(t, must_exist=True),
                                 help="tuning log (from `tvm-tinyml tune`) to build with")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tvm-tinyml` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        args = _parser().parse_args(argv)
        return args.func(args)
    except _UsageError as err:
        return _fail(argv, args, str(err), EXIT_BAD_INPUT, prefix="")
    except TinyMLError as err:
        return _fail(argv, args, str(err), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return _fail(argv, args, "interrupted", 130)
    except BrokenPipeError:  # the reader went away (`tvm-tinyml memory M | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as err:  # the one boundary: anything unexpected is a bug of ours
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        first = (str(err).strip().splitlines() or [""])[0]
        message = f"internal error: {type(err).__name__}: {first} (please report; rerun with {DEBUG_ENV}=1 for the traceback)"
        return _fail(argv, args, message, EXIT_INTERNAL)


def _fail(argv: list[str], args: argparse.Namespace | None, message: str, code: int, prefix: str = "tvm-tinyml: error: ") -> int:
    """Print the one stderr line of a failure (and under --json the JSON error object); return `code`."""
    message = " ".join(message.split())  # one line, whatever the exception held
    print(f"{prefix}{message}", file=sys.stderr)
    wants_json = getattr(args, "json", False) if args is not None else "--json" in argv
    if wants_json:
        command = getattr(args, "command", None) if args is not None else next((a for a in argv if not a.startswith("-")), None)
        model = getattr(args, "model", None) if args is not None else None
        print(json.dumps({"error": message, "exit_code": code, "command": command, "model": model}))
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
