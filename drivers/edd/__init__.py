"""EDD: differentiable co-search of a network and its accelerator (dissertation chapter 2).

``tables`` reads the simulators' own work terms and calibrations, ``cost`` weights them with the
relaxed choices in torch, ``supernet`` trains the single-path superkernel network on real
digits, ``search`` runs eq. 2.1's alternating optimisation, and ``driver`` makes it
``[search] driver = "edd"``. Needs the torch extra.
"""
