"""Measurement workers for `tvm-tinyml tune`: each owns one board (a QEMU instance, or an attached
board on its serial port) and measures batches of candidates the driver sends it.

A worker extracts the model's tasks once, then measures `(workload key, configs)` batches with
`tune.measure_batch` and returns the measurements; it never writes the log (the driver does, one
fsynced record per measurement, so a killed worker loses only its unfinished batch, which the
driver sends again). Two kinds, behind one interface (`submit` returns a concurrent Future):
- `InlinePool`: one worker in the driver's process (`--workers 1`, the default);
- `LocalPool`: one spawned process per worker (`--workers N`, or one per `--serial` port);
- `RayPool`: one Ray actor per worker (`--ray ADDRESS|auto`), placed by Ray's scheduler: QEMU
  workers need a CPU, an attached board a custom resource named after the board, which the
  machine it is plugged into offers (`ray start --address=HEAD --resources='{"stm32f746": 1}'`).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict

from tvm_tinyml.errors import TinyMLError

MAX_RESTARTS = 3  # a worker lost more often than this stops the session


class BoardWorker:
    """One board and the model's tasks: measures batches of one task's candidates."""

    def __init__(self, model: str, target: str, board: str, serial: str | None = None, tasks: list | None = None) -> None:
        from tvm_tinyml.tune import extract_tasks

        self.board, self.serial = board, serial
        self.tasks = {task.key: task for task in (tasks if tasks is not None else extract_tasks(model, target))}

    def measure(self, key: str, configs: list[dict], seed: int) -> list[dict]:
        from tvm_tinyml.tune import measure_batch

        return [asdict(m) for m in measure_batch(self.tasks[key], configs, self.board, seed=seed, serial=self.serial)]

    def pid(self) -> int:
        return os.getpid()


_WORKER: BoardWorker | None = None  # the BoardWorker of a LocalPool process


def _start(model: str, target: str, board: str, serial: str | None) -> None:
    global _WORKER
    _WORKER = BoardWorker(model, target, board, serial)


def _measure(key: str, configs: list[dict], seed: int) -> list[dict]:
    return _WORKER.measure(key, configs, seed)


def _pid() -> int:
    return os.getpid()


class Pool:
    """Workers numbered 0..size-1; `submit` sends one a batch; a lost worker is started again."""

    def __init__(self, model: str, target: str, board: str, serials: list[str | None]) -> None:
        self._args = (model, target, board)
        self.board = board
        self.serials = serials
        self.restarts = 0
        self._workers = [self._new(s) for s in serials]

    @property
    def size(self) -> int:
        return len(self._workers)

    def restart(self, index: int) -> None:
        """Replace worker `index` after it was lost (killed, crashed)."""
        self.restarts += 1
        if self.restarts > MAX_RESTARTS * self.size:
            raise TinyMLError(f"tune: measurement workers lost {self.restarts} times; stopping")
        self._stop(self._workers[index])
        self._workers[index] = self._new(self.serials[index])

    def close(self) -> None:
        for worker in self._workers:
            self._stop(worker)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InlinePool(Pool):
    """One worker in the driver's own process (`--workers 1`): each batch measured when submitted."""

    def __init__(self, model: str, target: str, board: str, serials: list[str | None], tasks: list) -> None:
        self._tasks = tasks
        super().__init__(model, target, board, serials)

    def _new(self, serial: str | None) -> BoardWorker:
        return BoardWorker(*self._args, serial, tasks=self._tasks)

    def _stop(self, worker: BoardWorker) -> None:
        pass

    def submit(self, index: int, key: str, configs: list[dict], seed: int) -> Future:
        future: Future = Future()
        future.set_result(self._workers[index].measure(key, configs, seed))
        return future

    @staticmethod
    def lost(error: BaseException) -> bool:
        return False


class LocalPool(Pool):
    """Each worker a process of its own (spawned: TVM and XGBoost do not survive a fork)."""

    def _new(self, serial: str | None) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                                   initargs=(*self._args, serial))

    def _stop(self, worker: ProcessPoolExecutor) -> None:
        worker.shutdown(wait=False, cancel_futures=True)

    def submit(self, index: int, key: str, configs: list[dict], seed: int) -> Future:
        return self._workers[index].submit(_measure, key, configs, seed)

    def pid(self, index: int) -> int:
        return self._workers[index].submit(_pid).result()

    @staticmethod
    def lost(error: BaseException) -> bool:
        return isinstance(error, BrokenProcessPool)


class RayPool(Pool):
    """Each worker a Ray actor owning one board (`ray.init(address)` first: an address or "auto")."""

    def __init__(self, model: str, target: str, board: str, serials: list[str | None], address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise TinyMLError("tune --ray needs Ray: pip install 'tvm-tinyml[distributed]'") from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
        self._actor = ray.remote(BoardWorker)
        super().__init__(model, target, board, serials)

    def _new(self, serial: str | None):
        model, target, board = self._args
        needs = {"num_cpus": 1} if board.startswith("qemu-") or board == "host" else {"num_cpus": 0, "resources": {board: 1}}
        return self._actor.options(**needs).remote(model, target, board, serial)

    def _stop(self, worker) -> None:
        self._ray.kill(worker)

    def submit(self, index: int, key: str, configs: list[dict], seed: int) -> Future:
        return self._workers[index].measure.remote(key, configs, seed).future()

    def pid(self, index: int) -> int:
        return self._ray.get(self._workers[index].pid.remote())

    def lost(self, error: BaseException) -> bool:
        return isinstance(error, self._ray.exceptions.RayActorError)


def make_pool(model: str, target: str, board: str, tasks: list, workers: int = 1, serials: list[str] | None = None,
              ray_address: str | None = None) -> Pool:
    """`workers` QEMU workers, or one per serial port; Ray actors when `ray_address` is given; a
    single local worker runs in the driver's process (`tasks`: the driver's, already extracted)."""
    ports: list[str | None] = list(serials) if serials else [None] * workers
    if ray_address is not None:
        return RayPool(model, target, board, ports, ray_address)
    if len(ports) == 1:
        return InlinePool(model, target, board, ports, tasks)
    return LocalPool(model, target, board, ports)
