"""The child as an agent: state table, attributes, hazard and lever specifications, Mesa reference model.

Rules live here once; ``sim/`` compiles these tables for the numba engine.
"""
