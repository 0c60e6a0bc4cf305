"""Pure converters, first in the flow: a campaign and its trials become Kubernetes objects (the
Job, Service and ConfigMap of a trial, their names, labels and security profile, the results
volume, the Campaign CRD), and what the API shows comes back as trainbed's values (a trial's
phase and observation, the Campaign's bounded status, what blocks it). No API calls here: every
function is a function of its inputs and is unit-tested without a cluster."""
