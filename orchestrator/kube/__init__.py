"""The Kubernetes backend: the one API adapter, informers, manifests, the executor, the Campaign
controller, the CRD, the status of trials, and the cluster verbs of the CLI."""
