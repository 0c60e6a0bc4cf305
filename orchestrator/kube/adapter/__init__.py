"""The API adapter: the one door between trainbed and the API server. It sends what
:mod:`..objects` built, maps API errors to trainbed's errors, and keeps list-then-watch caches
(informers) that the controller waits on instead of polling. Nothing else in trainbed talks to
the Kubernetes client."""
