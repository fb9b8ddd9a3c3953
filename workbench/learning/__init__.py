"""Continual learning: bandit routing among model versions, retraining triggers, contextual
exploration with logged propensities, off-policy evaluation, stateful vs stateless retraining.

Modules (import the one you need; nothing heavy is imported here):

* :mod:`workbench.learning.bandits` -- Thompson sampling over live model versions, persisted posteriors;
* :mod:`workbench.learning.triggers` -- time, performance and drift (ADWIN) triggers, live or offline;
* :mod:`workbench.learning.exploration` -- linear Thompson sampling for exploration slots in a list;
* :mod:`workbench.learning.ope` -- IPS, SNIPS and doubly robust estimates from logged bandit feedback;
* :mod:`workbench.learning.retrain` -- stateful (continue) and stateless (from scratch) retraining.
"""
