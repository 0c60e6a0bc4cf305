"""Planning a campaign, with no I/O: the spec, the design engine and its GF(2) algebra, the
minimum-aberration catalogue, and the trials a design expands into."""
