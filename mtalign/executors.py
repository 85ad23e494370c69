"""Executing the grid's cells: one cell with papermill (`execute_cell`), where it runs (in this process, a process
pool, or a submitit job, local or SLURM, with its GPUs), and the scheduling loop that runs many (`execute`).

A cell's job is plain data (`cell_job`), since it crosses process and machine boundaries; the executed notebook,
the notebook's own files and params.json land in the cell's folder (mtalign/manifests.py says what they mean).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from submitit import LocalExecutor
from submitit.slurm.slurm import SlurmExecutor

from mtalign import cost, runinfo, signals
from mtalign.grid import Cell, Plan
from mtalign.manifests import STATUSES, cell_state, manifest_entry, write_manifest

EXECUTORS = ("local", "local-submitit", "slurm")
# each cell's kernel logs errors only: ipykernel warns at every start that its local TCP sockets are unencrypted, two
# lines per cell that would bury a study's progress lines
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
STOP_GRACE_S = 60  # after Ctrl-C or SIGTERM, how long running cells get to stop cleanly before they are killed


# -- executing one cell (in a worker process, a submitit job, or inline) -----------------------------
def cell_job(cell: Cell, plan_: Plan, devices: list[str] | None) -> dict[str, Any]:
    """Everything a worker needs, as plain data (it crosses process and machine boundaries)."""
    notebook = plan_.notebooks[cell.notebook]
    resolved = {name: p.default if p.default is not None or p.source == "None" else p.source
                for name, p in notebook.parameters.items()}
    resolved.update(cell.parameters)
    return {
        "notebook": cell.notebook, "cell": cell.name, "input": str(_built(plan_, cell.notebook)),
        "source": str(notebook.source), "dir": str(cell.dir), "injected": cell.parameters, "resolved": resolved,
        "point": cell.point, "resources": cell.resources.__dict__,
        "devices": None if devices is None else ",".join(devices), "kernels": str(plan_.out / ".build" / "jupyter"),
        "grid_file": plan_.grid.source,
    }


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the kernel papermill starts, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cell_environment(job: dict[str, Any]) -> dict[str, str]:
    """The kernel's environment: its thread count, its GPUs (none unless assigned) and this venv's kernel."""
    threads = str(job["resources"]["cpus"])
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "TOKENIZERS_PARALLELISM": "false",
           "JUPYTER_PATH": os.pathsep.join(filter(None, [job["kernels"], os.environ.get("JUPYTER_PATH")]))}
    if job["devices"] is not None:  # None: the scheduler (SLURM) has already set CUDA_VISIBLE_DEVICES
        env["CUDA_VISIBLE_DEVICES"] = job["devices"]
    return env


def execute_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Run one cell with papermill in this process; return its params.json record (never raises for a failing cell).

    Order matters for resuming: params.json says `running` before anything else changes, the executed notebook is
    written under a `.partial.ipynb` name and renamed when papermill returns or raises, and params.json with the
    final status is written last. A killed run leaves `running` (or no params.json), so its cell reruns.
    """
    import papermill  # here, not at the top: about two seconds to import, and only a cell's own process needs it
    from papermill.exceptions import PapermillExecutionError

    # papermill's own inspector misreads some parameters cells (see read_notebook); the grid was checked already.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    cell_dir = Path(job["dir"])
    cell_dir.mkdir(parents=True, exist_ok=True)
    final = cell_dir / f"{job['notebook']}.ipynb"
    partial = cell_dir / f"{job['notebook']}.partial.ipynb"
    record = {
        "notebook": job["notebook"], "cell": job["cell"], "status": "running", "error": None,
        "point": job["point"], "injected": job["injected"], "parameters": job["resolved"],
        "resources": job["resources"], "devices": job["devices"], "source": job["source"],
        "grid_file": job["grid_file"], "executed_notebook": final.name, "started": runinfo.now(), "finished": None,
        "duration_s": None, "pid": os.getpid(), "environment": runinfo.environment(),
    }
    runinfo.write_json(cell_dir / "params.json", record)
    partial.unlink(missing_ok=True)
    final.unlink(missing_ok=True)  # an older attempt's notebook must not pass for this one's
    t0 = time.time()
    try:
        with _environ(cell_environment(job)), _stop_kernel_on_signal() as stopped:
            papermill.execute_notebook(job["input"], str(partial), parameters=job["injected"], kernel_name="python3",
                                       language="python", progress_bar=False, cwd=str(cell_dir),
                                       extra_arguments=KERNEL_ARGUMENTS)
        record.update(status="finished")
    except PapermillExecutionError as err:
        record.update(status="failed", error=f"{err.ename}: {err.evalue} (in cell [{err.exec_count}])")
    except Exception as err:  # a dead kernel, a missing module in the kernel: still a cell failure, not the runner's
        record.update(status="failed", error=f"{type(err).__name__}: {err}")
    if stopped:  # not the cell's fault: it reruns next time (cell_state treats anything but finished/failed so)
        record.update(status="interrupted", error=f"interrupted by {stopped[0]}")
    if partial.exists():
        os.replace(partial, final)
    record.update(finished=runinfo.now(), duration_s=round(time.time() - t0, 2))
    runinfo.write_json(cell_dir / "params.json", record)  # last: the done marker
    return record


@contextlib.contextmanager
def _stop_kernel_on_signal() -> Iterator[list[str]]:
    """While a cell runs here, SIGINT and SIGTERM interrupt its kernel instead of this process.

    The kernel runs in its own session (jupyter_client starts it so), so neither Ctrl-C nor a signal sent to this
    worker reaches it; killed with its worker, it would keep training and write files while the manifest says
    pending. Here the first signal is passed to the kernel as SIGINT, which ends the cell's code with
    KeyboardInterrupt (a run in it marks itself `interrupted`), papermill returns, and the cell is recorded as
    interrupted; later signals are ignored so that this bookkeeping finishes. The list it yields names the signal.
    """
    stopped: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def stop(signum, frame):
        if stopped:
            return
        stopped.append(signal.Signals(signum).name)
        kernels = signals.children(os.getpid())
        if not kernels:  # papermill has not started the kernel yet (or it is gone): nothing to wait for
            raise KeyboardInterrupt(f"stopped by {stopped[0]}")
        signals.send(kernels, signal.SIGINT)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _built(plan_: Plan, notebook: str) -> Path:
    return plan_.out / ".build" / "notebooks" / f"{notebook}.ipynb"


def prepare(plan_: Plan) -> None:
    """Convert the notebooks to .ipynb (build artifacts under <out>/.build) and pin the kernel to this Python."""
    import jupytext  # here, not at the top: about a second to import, needed once per study

    for name, notebook in plan_.notebooks.items():
        target = _built(plan_, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(jupytext.writes(jupytext.read(notebook.source), fmt="ipynb"))
        os.replace(tmp, target)
    # A kernel named python3 in a folder on JUPYTER_PATH wins over any user-level python3 kernel, so every cell runs
    # in the interpreter (and venv) that runs the grid, here and on cluster nodes.
    runinfo.write_json(plan_.out / ".build" / "jupyter" / "kernels" / "python3" / "kernel.json", {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (mtalign study)", "language": "python"})
    if any("runs_dir" in cell.parameters for cell in plan_.cells):
        (plan_.out / "runs").mkdir(parents=True, exist_ok=True)


# -- where cells run: workers, GPUs, executors ------------------------------------------------------
def take_gpus(free: list[str], requests: list[int], slots: int) -> list[tuple[int, list[str]]]:
    """Which waiting cells start now and on which GPUs: first fit in grid order, at most `slots` cells.

    `free` are device ids (as CUDA_VISIBLE_DEVICES writes them), `requests[i]` the GPUs cell i needs. A cell that
    needs more GPUs than are free waits; later, smaller cells may start meanwhile.
    """
    free, starts = list(free), []
    for index, need in enumerate(requests):
        if len(starts) >= slots:
            break
        if need <= len(free):
            starts.append((index, free[:need]))
            free = free[need:]
    return starts


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else every device torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch  # here, not at the top: seconds to import, and only a grid with GPU cells asks
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def slurm_parameters(cell: Cell) -> dict[str, Any]:
    """submitit SlurmExecutor parameters for one cell: one task on one node, with the cell's resources."""
    r = cell.resources
    params = {"job_name": cell.name, "nodes": 1, "ntasks_per_node": 1, "cpus_per_task": r.cpus,
              "time": r.time_min or 24 * 60, **cell.slurm}
    if r.gpus:
        params["gpus_per_node"] = r.gpus
    if r.mem_gb:
        params["mem"] = f"{int(r.mem_gb)}GB"
    return params


class _Inline:
    """Runs each cell in this process: one worker, no pool (simplest to debug; Ctrl-C stops at once)."""

    def submit(self, cell: Cell, job: dict[str, Any]):
        future: Future = Future()
        future.set_result(execute_cell(job))
        return future

    def close(self, cancel: bool = False) -> None:
        pass


class _Pool:
    """A process pool: each cell's papermill call runs in a worker process, its kernel a child of that."""

    def __init__(self, workers: int):
        # spawn: workers start clean, without this process's threads or open handles
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, cell: Cell, job: dict[str, Any]):
        return self.pool.submit(execute_cell, job)

    def close(self, cancel: bool = False) -> None:
        if not cancel:
            self.pool.shutdown(wait=True)
            return
        # Stop the running cells and wait for them, so that the manifest written next is true and the study lock is
        # released last. Each worker passes the signal to its kernel as SIGINT (`_stop_kernel_on_signal`), whose run
        # marks itself interrupted; the worker then records its cell as interrupted and exits. Ctrl-C already sent
        # SIGINT to the workers (same process group); the SIGTERM here reaches them when only this process was
        # signalled (kill, timeout, SLURM). ProcessPoolExecutor has no public way to stop workers before Python 3.14.
        processes = list(getattr(self.pool, "_processes", {}).values())
        family = {p.pid: signals.descendants(p.pid) for p in processes if p.pid is not None}
        for process in processes:
            process.terminate()
        self.pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.time() + STOP_GRACE_S
        for process in processes:
            process.join(timeout=max(0.0, deadline - time.time()))
        for process in processes:  # a kernel that ignores SIGINT (stuck in C code): kill it and its worker
            if process.is_alive() or any(os.path.exists(f"/proc/{pid}") for pid in family.get(process.pid, [])):
                signals.send(family.get(process.pid, []), signal.SIGKILL)
                process.kill()
                process.join(timeout=5)


class _Submitit:
    """Each cell one submitit job: LocalExecutor (subprocesses here) or SlurmExecutor (one SLURM job per cell)."""

    def __init__(self, kind: str, folder: Path):
        if kind == "slurm":
            try:
                self.executor = SlurmExecutor(folder=folder / "%j")
            except RuntimeError as err:
                raise ValueError(f"--executor slurm needs a SLURM cluster ({err}); valid executors here: "
                                 "local, local-submitit") from None
        else:
            self.executor = LocalExecutor(folder=folder / "%j")
        self.kind, self.jobs = kind, []

    def submit(self, cell: Cell, job: dict[str, Any]):
        if self.kind == "slurm":
            self.executor.update_parameters(**slurm_parameters(cell))
        else:  # GPUs are assigned by the runner (job["devices"]); no gpus_per_node here
            self.executor.update_parameters(timeout_min=cell.resources.time_min or 24 * 60)
        handle = self.executor.submit(execute_cell, job)
        self.jobs.append(handle)
        return handle

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for handle in self.jobs:
                if not handle.done():
                    handle.cancel(check=False)



def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# -- the scheduling loop ------------------------------------------------------------------------------
@dataclass
class Progress:
    """How far a run of the grid is, for a person watching a long study: cells done of those to run, failures so far,
    and the time left spread over the workers. The time left is the cost model's estimate of each remaining cell
    (`estimates`, from params/costs.yaml) scaled by how the finished cells' measured durations compared with their
    estimates on this machine; a cell without an estimate counts its notebook's measured mean (an RL cell is not an
    alignment cell)."""

    total: int
    workers: int
    done: int = 0
    failed: int = 0
    durations: dict[str, list[float]] = field(default_factory=dict)  # notebook -> seconds of its finished cells
    started: dict[str, float] = field(default_factory=dict)  # running cell -> time.time() when it started
    estimates: dict[str, float] = field(default_factory=dict)  # cell -> the cost model's seconds, where it has one
    paced: list[tuple[float, float]] = field(default_factory=list)  # (estimated, measured) s of finished cells

    def start(self, cell: Cell) -> None:
        self.started[cell.name] = time.time()

    def finish(self, cell: Cell, status: str, duration_s: float | None) -> None:
        self.started.pop(cell.name, None)
        self.done += 1
        self.failed += status != "finished"
        if duration_s is not None:
            self.durations.setdefault(cell.notebook, []).append(duration_s)
            if status == "finished" and cell.name in self.estimates:
                self.paced.append((self.estimates[cell.name], duration_s))

    def pace(self) -> float:
        """Measured over estimated seconds of the finished cells that had an estimate (1.0 before any): how much
        slower or faster this machine runs today than the cost model says."""
        estimated = sum(e for e, _ in self.paced)
        return sum(m for _, m in self.paced) / estimated if estimated > 0 else 1.0

    def eta_s(self, waiting: list[Cell], running: list[Cell]) -> float | None:
        """Seconds left: each remaining cell's expected duration (its estimate times the pace so far; without an
        estimate its notebook's measured mean, else every finished cell's), less what a running cell has already
        spent, over the parallel lanes; None while some cell has neither."""
        measured = [d for ds in self.durations.values() for d in ds]
        overall = sum(measured) / len(measured) if measured else None
        pace = self.pace()

        def expected(cell: Cell) -> float | None:
            if cell.name in self.estimates:
                return self.estimates[cell.name] * pace
            own = self.durations.get(cell.notebook)
            return sum(own) / len(own) if own else overall

        cells = [*waiting, *running]
        if any(expected(c) is None for c in cells):
            return None

        now = time.time()
        work = sum(expected(c) for c in waiting) + sum(
            max(expected(c) - (now - self.started.get(c.name, now)), 0.0) for c in running)
        lanes = max(1, min(self.workers, len(waiting) + len(running)))
        return work / lanes

    def line(self, eta: float | None) -> str:
        """`[5/14 done, 1 failed, about 6 min left]`"""
        text = f"[{self.done}/{self.total} done, {self.failed} failed"
        if self.done < self.total:
            text += ", time left unknown yet" if eta is None else f", about {cost.duration(eta)} left"
        return text + "]"

    def record(self, eta: float | None) -> dict[str, Any]:
        return {"cells_to_run": self.total, "done": self.done, "failed": self.failed,
                "running": len(self.started), "eta_s": None if eta is None else round(eta),
                "estimated_finish": None if eta is None else
                time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() + eta))}


def execute(plan_: Plan, todo: list[Cell], entries: dict[str, dict[str, Any]], started: str, workers: int,
            executor: str, gpus: list[str] | None, log, progress: Progress | None = None) -> int:
    """The scheduling loop shared by every executor: start what fits, collect what finished, keep the manifest."""
    if not todo:
        return 0
    progress = progress or Progress(len(todo), workers)
    if executor == "local":
        backend = _Inline() if workers == 1 else _Pool(min(workers, len(todo)))
    else:
        backend = _Submitit(executor, plan_.out / ".submitit")
    waiting, running, failed, done = list(todo), {}, 0, 0
    free = list(gpus) if gpus is not None else None
    try:
        while waiting or running:
            slots = workers - len(running)
            if free is None:
                starts = [(i, None) for i in range(min(slots, len(waiting)))]
            else:
                starts = take_gpus(free, [c.resources.gpus for c in waiting], slots)
            for index, devices in starts:
                cell = waiting[index]
                if devices is not None:
                    free = [d for d in free if d not in devices]
                log(f"start    {cell.name}" + (f" on GPU {','.join(devices)}" if devices else ""))
                progress.start(cell)
                handle = backend.submit(cell, cell_job(cell, plan_, devices))
                running[id(handle)] = (handle, cell, devices)
            chosen = {waiting[i].name for i, _ in starts}
            waiting = [c for c in waiting if c.name not in chosen]
            finished = [key for key, (handle, _, _) in running.items() if handle.done()]
            if not finished:
                time.sleep(0.2 if executor == "local" else 1.0)
                continue
            for key in finished:
                handle, cell, devices = running.pop(key)
                try:
                    record = handle.result()
                except Exception as err:  # the worker itself died (killed, out of memory): the cell failed
                    record = {"status": "failed", "error": f"worker failed: {type(err).__name__}: {err}"}
                    backend = _replace_broken(backend, workers, len(waiting))
                if devices is not None:
                    free = sorted(free + devices, key=str)
                if record.get("status") == "interrupted":  # its kernel or worker was signalled: stop the study
                    running[key] = (handle, cell, devices)
                    raise KeyboardInterrupt(record.get("error") or "a cell was interrupted")
                done += 1
                status = record.get("status", "failed")
                failed += status != "finished"
                entries[cell.name] = manifest_entry(cell, plan_.out, status if status in STATUSES else "failed", record)
                progress.finish(cell, status, record.get("duration_s"))
                eta = progress.eta_s(waiting, [c for _, c, _ in running.values()])
                line = f"{status:<8} {cell.name}"
                if record.get("duration_s") is not None:
                    line += f" in {record['duration_s']:.1f} s"
                log(line + (f": {record.get('error')}" if status != "finished" else "") + " " + progress.line(eta))
                write_manifest(plan_, entries, started, progress=progress.record(eta))
    except KeyboardInterrupt:
        backend.close(cancel=True)
        for _, cell, _ in running.values():  # a cell may have finished just before the interrupt
            state, record = cell_state(cell)
            entries[cell.name] = (manifest_entry(cell, plan_.out, "finished", record) if state == "done" else
                                  manifest_entry(cell, plan_.out, "pending", None, "interrupted; reruns next time"))
        write_manifest(plan_, entries, started)
        raise
    backend.close()
    return failed


def _replace_broken(backend, workers: int, waiting: int):
    """A process pool whose worker died cannot run more cells; start a fresh one for the rest."""
    if isinstance(backend, _Pool) and getattr(backend.pool, "_broken", False):
        backend.close(cancel=True)
        return _Pool(max(1, min(workers, waiting)))
    return backend
