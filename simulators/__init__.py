"""Hardware simulators shipped with dse (installed as ``dse.simulators``); each registers
itself in :data:`dse.registry.SIMULATORS`."""
