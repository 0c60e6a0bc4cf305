"""The Campaign controller and the state it keeps in the cluster: it runs the same driver as the
local backend with a Kubernetes executor over the adapter's informer caches, holds one Lease per
campaign so one controller reconciles it, and records each finished trial in chunked ConfigMaps.
It sits between the CLI verbs (which start it or read what it wrote) and the adapter."""
