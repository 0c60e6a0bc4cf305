"""The CLI's cluster verbs, last in the flow: ``submit``, ``run --backend kubernetes``,
``status``, ``logs`` and ``collect``, and the live progress bar they show. Thin over the adapter
(the Campaign resource is the interface, so plain ``kubectl`` works too) and, for ``run``, over
the controller in :mod:`..control`."""
