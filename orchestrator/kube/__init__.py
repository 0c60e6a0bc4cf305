"""The Kubernetes backend, in four rooms that follow a campaign's flow:

- :mod:`.objects`: pure converters between trainbed's values (campaign, trial, status) and the
  Kubernetes objects that hold them (manifests, names and labels, the CRD, what a Job says);
- :mod:`.adapter`: the one door to the API server (requests, errors, list-then-watch caches);
- :mod:`.control`: the Campaign controller and its state kept in the cluster (the executor over
  informer caches, the per-campaign Lease, the records ConfigMaps);
- :mod:`.verbs`: the CLI's cluster verbs (``submit``, ``run --backend kubernetes``, ``status``,
  ``logs``, ``collect``), thin over the other three.

Dependencies go down that list's reverse: verbs > control > adapter | objects.
"""
