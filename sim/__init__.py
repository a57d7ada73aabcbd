"""The fast engine: struct-of-arrays population, numba kernels, observation model, runner, results, CLI."""
