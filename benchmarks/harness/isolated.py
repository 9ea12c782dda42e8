"""One measurement in a fresh process: the time and the memory peaks of a call.

A spawned child builds what it measures (``build(job)`` returns the call), records its
resident memory (VmRSS) as the baseline, resets the resident high-water mark
(``/proc/self/clear_refs``), times ``repeats`` calls (best kept), reads the high-water mark
and runs one more call under ``tracemalloc``; on CUDA also
``torch.cuda.max_memory_allocated``. The parent stops a child that outlives its time
(``benchmarks.speed``'s query part).
"""

from __future__ import annotations

import gc
import multiprocessing
import re
import time
import traceback
import tracemalloc
import warnings

__all__ = ["SETUP_TIMEOUT_S", "profile_call", "proc_status_kib", "reset_peak_rss",
           "run_measurement"]

SETUP_TIMEOUT_S = 900


def proc_status_kib(field: str):
    try:
        with open("/proc/self/status") as handle:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", handle.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def profile_call(call, repeats: int, cuda: bool, conn) -> dict:
    """Best-of-``repeats`` time, peak RSS, traced and CUDA peaks of ``call()``.

    Sends ``{"ready": True}`` once the baseline memory is read.
    """
    import torch

    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline = proc_status_kib("VmRSS")
    reset = reset_peak_rss()
    conn.send({"ready": True})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        del result
    peak = proc_status_kib("VmHWM")
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    tracemalloc.start()
    result = call()
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return {"seconds": min(times),
            "peak_rss_mib": None if peak is None or baseline is None
            else max(peak - baseline, 0) / 1024,
            "peak_traced_mib": traced / 2**20, "peak_cuda_mib": cuda_peak,
            "rss_reset": reset}


def _worker(build, job: dict, conn) -> None:
    """Child process: set up one learner, then time and profile its queries.

    Sends ``{"ready": True}`` once set up, then the result dict (or ``{"error": ...}``).
    """
    try:
        warnings.filterwarnings("ignore")
        if job.get("threads"):
            import torch

            torch.set_num_threads(int(job["threads"]))
        call = build(job)
        conn.send(profile_call(call, job["repeats"], str(job["device"]).startswith("cuda"),
                           conn))
    except BaseException as exc:  # reported to the parent, whatever it is
        conn.send({"error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc()})
    finally:
        conn.close()


def run_measurement(build, job: dict, *, timeout: float) -> dict:
    """Run one measurement in a fresh spawned process and return its result: the call
    ``build(job)`` returns (``build``: a module-level function, which the child imports).

    ``{"status": "ok", ...}``, ``{"status": "timeout"}`` when the queries take longer
    than ``timeout`` seconds, or ``{"status": "error: ..."}``.
    """
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker, args=(build, job, send), daemon=True)
    proc.start()
    send.close()
    try:
        for limit, stage in ((SETUP_TIMEOUT_S, "setup"), (timeout, "query")):
            if not recv.poll(limit):
                return {"status": "timeout" if stage == "query" else "error: setup timed out"}
            message = recv.recv()
            if "error" in message:
                return {"status": f"error: {message['error']}",
                        "traceback": message.get("traceback")}
            if stage == "query":
                return {"status": "ok", **message}
    except EOFError:
        proc.join(10)
        return {"status": f"error: the measurement process died (exit code "
                          f"{proc.exitcode}; out of memory?)"}
    finally:
        recv.close()
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        proc.join()
    return {"status": "error: no result"}
