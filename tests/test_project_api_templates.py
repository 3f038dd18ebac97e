"""Each template driven through the Project API client only, as an outside tool would:
server_info_query -> generate_project -> (project server) build -> flash -> transport.
Also the firmware's kernel mode, fault frames and bounded waits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import tvm_tinyml
from project_api.client import (
    ProjectAPIClient,
    ProjectAPIServerError,
    ProjectAPITimeoutError,
    firmware_session,
    list_templates,
    template_for_board,
)
from project_api.firmware_protocol import Counter, FirmwareFault, FirmwareTimeout

MODELS = Path(__file__).resolve().parent.parent / "models"
TEST_KERNELS = Path(__file__).resolve().parent / "firmware" / "test_kernels.c"
ADD_ONE, UNDEFINED_INSTRUCTION, OVERFLOW_STACK, SPIN_FOREVER = range(4)


@pytest.fixture(scope="module")
def kws(tmp_path_factory) -> tuple[Path, dict]:
    artifact = tvm_tinyml.build(str(MODELS / "kws_ref_model.tflite"), target="qemu-m7")
    return artifact.export(tmp_path_factory.mktemp("kws")), artifact


def generate(template: Path, model_dir: Path, project_dir: Path, options: dict) -> None:
    with ProjectAPIClient(template) as client:
        info = client.server_info_query()
        assert info["is_template"] and info["protocol_version"] == 1
        client.generate_project(model_dir, project_dir, options)


def test_templates_are_discovered_by_directory():
    assert {"host", "qemu", "stm32f746"} <= set(list_templates())
    assert template_for_board("qemu-m4").name == "qemu"
    assert template_for_board("host").name == "host"


@pytest.mark.parametrize("board", ["host", "qemu-m7"])
def test_template_runs_the_model_like_the_host_build(board, kws, tmp_path):
    model_dir, artifact = kws
    generate(template_for_board(board), model_dir, tmp_path / "project", {"board": board})
    x = np.random.default_rng(1).integers(-128, 128, size=artifact.metadata["inputs"][0]["shape"]).astype(np.int8)
    expected = artifact.run_host([x])[0].tobytes()
    with ProjectAPIClient(tmp_path / "project") as project:
        info = project.server_info_query()
        assert not info["is_template"]
        project.build({})
        project.flash({})
        assert set(project.open_transport({})) == {
            "session_start_retry_timeout_sec", "session_start_timeout_sec", "session_established_timeout_sec"}
        session = firmware_session(project, timeout_sec=30)
        firmware = session.info()
        assert (firmware.model, firmware.arena_bytes) == ("kws_ref_model", artifact.memory.arena_bytes)
        assert firmware.input_bytes == [x.size]
        reply = session.run([x.tobytes()])
        assert reply.status == 0 and reply.data == expected
        if board == "host":
            assert firmware.counter == Counter.NONE and reply.cycles is None
        else:
            assert firmware.counter == Counter.QEMU_PLUGIN and reply.instructions > 1_000_000 and reply.cycles > reply.instructions
        session.exit()
        project.close_transport()


def test_template_server_refuses_build_and_bad_options(kws, tmp_path):
    with ProjectAPIClient(template_for_board("host")) as template:
        with pytest.raises(ProjectAPIServerError, match="build: this is a template"):
            template.build({})
        with pytest.raises(ProjectAPIServerError, match="choose one of"):
            template.generate_project(kws[0], tmp_path / "p", {"board": "not-a-board"})
        with pytest.raises(ProjectAPIServerError, match="unknown project options: colour"):
            template.generate_project(kws[0], tmp_path / "p", {"colour": "red"})


def test_unanswered_call_times_out(tmp_path):
    (tmp_path / "microtvm_api_server.py").write_text("import time\ntime.sleep(60)\n")
    start = time.monotonic()
    with ProjectAPIClient(tmp_path, start_timeout_sec=1) as client, pytest.raises(ProjectAPITimeoutError, match="within 1 s"):
        client.server_info_query()
    assert time.monotonic() - start < 10


@pytest.fixture(params=["host", "qemu-m7"])
def kernel_project(request, kws, tmp_path):
    """A running firmware whose kernel table is tests/firmware/test_kernels.c."""
    board = request.param
    generate(template_for_board(board), kws[0], tmp_path / "project", {"board": board, "kernels_source": str(TEST_KERNELS)})
    with ProjectAPIClient(tmp_path / "project") as project:
        project.build({})
        project.flash({})
        project.open_transport({})
        yield board, firmware_session(project, timeout_sec=20)
        project.close_transport()


def test_run_kernel_mode(kernel_project):
    board, session = kernel_project
    assert session.info().num_kernels == 4
    reply = session.run_kernel(ADD_ONE, bytes(range(16)), in_offset=0, out_offset=0, out_bytes=16)
    assert reply.data == bytes(range(1, 17))
    if board != "host":
        assert 16 <= reply.instructions < 1000


def test_hard_fault_is_reported(kernel_project):
    board, session = kernel_project
    pattern = "signal 4" if board == "host" else r"HardFault at pc=0x[0-9a-f]{8} .*CFSR=0x00010000"  # UNDEFINSTR
    with pytest.raises(FirmwareFault, match=pattern):
        session.run_kernel(UNDEFINED_INSTRUCTION, b"", 0, 0, 0)


def test_stack_overflow_is_reported(kernel_project):
    board, session = kernel_project
    with pytest.raises(FirmwareFault, match="signal 11" if board == "host" else "stack overflow") as info:
        session.run_kernel(OVERFLOW_STACK, b"", 0, 0, 0)
    if board != "host":
        assert info.value.report.kind == 2


def test_silent_board_times_out(kernel_project):
    _, session = kernel_project
    start = time.monotonic()
    with pytest.raises(FirmwareTimeout, match="board silent"):
        session.run_kernel(SPIN_FOREVER, b"", 0, 0, 0, timeout_sec=2)
    assert time.monotonic() - start < 15


@pytest.mark.parametrize("model", ["kws_ref_model", "vww_96_int8"])
def test_stm32f746_project_builds_and_fits(model, tmp_path):
    artifact = tvm_tinyml.build(str(MODELS / f"{model}.tflite"), target="stm32f746")
    generate(template_for_board("stm32f746"), artifact.export(tmp_path / "model"), tmp_path / "project", {"board": "stm32f746"})
    with ProjectAPIClient(tmp_path / "project") as project:
        project.build({})
        with pytest.raises(ProjectAPIServerError, match="serial port /dev/tinyml-no-such-port not found"):
            project.open_transport({"serial_port": "/dev/tinyml-no-such-port"})
    firmware = json.loads((tmp_path / "project" / "build" / "firmware.json").read_text())
    assert firmware["ram_bytes"] <= 320 * 1024 and firmware["flash_bytes"] <= 1024 * 1024
    assert firmware["ram_bytes"] >= artifact.memory.arena_bytes
    assert firmware["sections"][".arena"] >= artifact.memory.arena_bytes


def test_missing_toolchain_is_one_clear_error(kws, tmp_path, monkeypatch):
    generate(template_for_board("qemu-m7"), kws[0], tmp_path / "project", {"board": "qemu-m7"})
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with ProjectAPIClient(tmp_path / "project") as project, pytest.raises(
        ProjectAPIServerError, match="arm-none-eabi-gcc not found on PATH: install"
    ):
        project.build({})
