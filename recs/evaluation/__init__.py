"""Prequential (test-then-train) evaluation of the engine against simple baselines.

``recs eval --dataset rsc15 --data-dir ../shared/data`` replays a log in event-time order through
the engine's operators (:mod:`stream.reference`) and through the baselines, asks every method for
recommendations *before* each event is learned, and scores them.

==================  ===========================================================================
``protocols``       which events are learned and which are scored (next-item, streaming, split)
``metrics``         HR/MRR/NDCG/precision@K, coverage, diversity, novelty, mean percentile rank
``baselines``       popularity, decayed popularity, co-visitation, association/sequential rules
``sknn``            V-SKNN (session-based kNN, session-rec's VMContextKNN)
``engine_recs``     the engine's sources and their blend (``engine``, ``engine_static``), read
                    from the reference runner and its online model
``learned``         ``online_mf``, the rating protocol and the learning bench
``harness``         the replay loop with its progress bar
``report``          Markdown table, JSON and plot of a run
``page``            the results page (``docs/quality.md``) from the stored runs
``tune``            the blend's learned-source grid and the model's cost/quality grid
``cli``             ``recs eval``
==================  ===========================================================================
"""
