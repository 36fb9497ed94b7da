"""Plugin commands (dse roofline, proxy-eval, dps, proxy-fit, medusa, calibrate): front doors
above the plugin rooms, registered in :data:`dse.registry.COMMANDS` and imported only when
asked."""
