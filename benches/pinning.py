"""One core for every 1-thread measurement, shared by the benchmark scripts.

This VM's two cores run at different speeds, and by how much changes over minutes (ResNet-20 on 1 thread:
1.17 ms pinned to one core, 1.58 on the other, then 2.0 on the first). An unpinned 1-thread run measured
whichever core the scheduler picked, so a comparison could pit one engine's fast core against another's
slow one. Inside `one_core(1)` this process runs on its first allowed core, and so does every process it
starts (children inherit the affinity): resin, ONNX Runtime, tract or PyTorch, the same core for all.
"""
import contextlib
import os


@contextlib.contextmanager
def one_core(threads):
    """Pins this process (and the processes it starts) to one core while the block runs, when `threads`
    is 1; otherwise leaves the affinity alone. The affinity is restored afterwards."""
    allowed = os.sched_getaffinity(0)
    if threads == 1:
        os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)
