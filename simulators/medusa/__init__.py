"""Medusa multi-head decoding (dissertation chapter 6): head accuracies, candidate trees,
acceptance, and decoding cost on the GPU roofline."""
