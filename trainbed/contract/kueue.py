"""The names trainbed shares with Kueue, the admission controller of shared clusters.

A trial's Job that carries ``QUEUE_LABEL`` and is created suspended waits until Kueue admits it
(all ranks at once: admission is all-or-nothing per Workload), then Kueue unsuspends it. Kueue
tracks each such Job as a ``Workload`` whose conditions say whether it is admitted, why not yet,
and whether it was evicted or preempted; trainbed reads them (read only) and never writes them.
"""

from __future__ import annotations

#: The Job label that hands the Job to Kueue: the LocalQueue, in the Job's namespace.
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
#: The Job label naming a Kueue ``WorkloadPriorityClass`` (queueing order and preemption only;
#: it does not touch the pods' own priority).
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
#: The Workload API trainbed reads (the version Kueue v0.17 stores).
GROUP, VERSION, WORKLOADS = "kueue.x-k8s.io", "v1beta2", "workloads"
#: The Workload's label that names the Job it stands for (its UID).
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"

#: Workload condition types.
QUOTA_RESERVED = "QuotaReserved"
ADMITTED = "Admitted"
EVICTED = "Evicted"
PREEMPTED = "Preempted"
FINISHED = "Finished"
