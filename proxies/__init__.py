"""Accuracy proxies shipped with dse (installed as ``dse.proxies``); each registers itself in
:data:`dse.registry.PROXIES`."""
