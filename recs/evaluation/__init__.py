"""Prequential (test-then-train) evaluation of the engine against simple baselines.

``recs eval --dataset rsc15 --data-dir ../shared/data`` replays a log in event-time order through
the engine's operators (:mod:`stream.reference`) and through the baselines, asks every method for
recommendations *before* each event is learned, and scores them.

==================  ===========================================================================
``protocols``       which events are learned and which are scored (next-item, streaming, split)
``metrics``         HR/MRR/NDCG/precision@K, coverage, diversity, novelty, mean percentile rank
``baselines``       popularity, decayed popularity, co-visitation, association/sequential rules
``sknn``            V-SKNN (session-based kNN, session-rec's VMContextKNN)
``engine_recs``     the engine's sources and their blend, read from the reference runner
``harness``         the replay loop with its progress bar
``report``          Markdown table, JSON, plot and the results page
``cli``             ``recs eval``
==================  ===========================================================================
"""
