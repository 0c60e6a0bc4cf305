"""The local backend: trials as process groups on this machine, under enforced limits."""
