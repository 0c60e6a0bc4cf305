"""What a trial ran on (contract, ``result.json``'s ``host``): the kernel, CPU, cgroup mode and
GPU stack, as rank 0 read them back from its own system.

Hoefler and Belli's rule 9 (document the setup): a result is only comparable with another when
both say what they ran on. The worker fills this in (:mod:`trainbed.worker.host_info`); the
report lists each distinct setup once and which trials ran on it. A value the worker could not
read is null, never a guess: a CPU trial on a machine without NVIDIA's stack has every GPU field
null, and ``cuda`` says only which CUDA torch was built for where no GPU is visible.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

#: How the process's cgroups are mounted: v1 controllers only, the unified v2 hierarchy only,
#: or both (v1 controllers with a cgroup2 mount beside them, systemd's "hybrid").
CgroupMode = Literal["v1", "v2", "hybrid"]


class HostInfo(BaseModel):
    """The machine and software stack a trial's rank 0 ran on (added in v1, optional)."""

    model_config = ConfigDict(extra="allow")

    #: ``platform.release()``, e.g. ``6.8.0-45-generic``.
    kernel: str | None = None
    #: ``/proc/cpuinfo``'s ``model name`` (the first; mixed models are joined with " + ").
    cpu_model: str | None = None
    #: Logical CPUs of the machine (``os.cpu_count()``).
    cpu_count: int | None = None
    #: Logical CPUs this process may run on (``os.sched_getaffinity(0)``): fewer than
    #: ``cpu_count`` in a container or under the local fallback's affinity.
    cpu_affinity: int | None = None
    #: From ``/proc/self/mountinfo``; null where no cgroup filesystem is mounted.
    cgroup_mode: CgroupMode | None = None
    #: The model of the GPU the rank used (``torch.cuda.get_device_name``); null without CUDA.
    gpu_model: str | None = None
    #: GPUs visible to the rank (``torch.cuda.device_count()``); null without CUDA.
    gpu_count: int | None = None
    #: NVIDIA driver version (NVML's ``nvmlSystemGetDriverVersion``); null without ``pynvml``.
    gpu_driver: str | None = None
    #: The CUDA version torch was built with (``torch.version.cuda``); null for CPU-only builds.
    cuda: str | None = None
    #: ``torch.backends.cudnn.version()`` as the integer cuDNN reports (e.g. 90100 for 9.1.0);
    #: null where torch has no cuDNN.
    cudnn: int | None = None
    #: NCCL's version, dotted (``torch.cuda.nccl.version()``), read only where CUDA is available.
    nccl: str | None = None

    def setup_key(self) -> tuple[object, ...]:
        """The fields that make two hosts the same setup: all but ``cpu_affinity``, which the
        local fallback sets per trial from its CPU level (a limit, not another machine)."""
        return tuple(getattr(self, name) for name in SETUP_FIELDS)


#: HostInfo's fields that name a setup, in the order the report shows them.
SETUP_FIELDS: tuple[str, ...] = tuple(f for f in HostInfo.model_fields if f != "cpu_affinity")
