"""Streaming features: one definition, computed live (quixstreams) and on history (backfill).

Modules, one noun each:

* :mod:`~workbench.features.expr` - filter, key and field expressions (no lambdas, so they hash);
* :mod:`~workbench.features.windows` - window kinds and the exact semantics both paths follow;
* :mod:`~workbench.features.aggregations` - built-in and custom aggregations;
* :mod:`~workbench.features.derived` - ``Filtered`` and ``Derived`` (e.g. CTR in one window);
* :mod:`~workbench.features.definition` - Entity, Feature, FeatureSet, content hash, registry;
* :mod:`~workbench.features.fingerprint` - formatting-blind fingerprints of custom code;
* :mod:`~workbench.features.stream` - the quixstreams pipeline, and a broker-less runner;
* :mod:`~workbench.features.job` - the live job writing ``features.<set>`` (and late records to the DLQ);
* :mod:`~workbench.features.backfill` - the vectorized backfill;
* :mod:`~workbench.features.skew` - stream vs backfill comparison;
* :mod:`~workbench.features.training` - point-in-time training frames;
* :mod:`~workbench.features.session` - the standard session feature set, item lists, session embedding;
* :mod:`~workbench.features.request` - request-time features, evaluated online and offline alike.
"""
