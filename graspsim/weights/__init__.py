"""Weights management for the learned perception stacks: registry, local store, CLI.

``graspsim weights list|fetch|verify``; see :mod:`graspsim.weights.store` for the
on-disk layout, fetching and :func:`~graspsim.weights.store.resolve`, and
:mod:`graspsim.weights.registry` for what can be fetched.
"""
