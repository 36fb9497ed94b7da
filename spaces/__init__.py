"""Search spaces shipped with dse (installed as ``dse.spaces``): NAS-Bench-201, the EDD MBConv
chain and the reference-network zoo. Each registers itself in :data:`dse.registry.SPACES`."""
