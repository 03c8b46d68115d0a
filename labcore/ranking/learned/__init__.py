"""A learned ranker: from logged impressions to a model served behind the same ``POST /rank``.

One concept per module, in the order the loop runs:

``labcore.lab.simulator``        users with hidden tastes request feeds, report impressions, like
``learned.dataset``              impressions → labels (liked within a window) → point-in-time
                                 features from Feast (``get_historical_features``)
``learned.training``             a time split, logistic regression and gradient boosting
``learned.evaluation``           AUC, log-loss, NDCG@20 per user, against ``formula-v1``
``learned.ranker``               the model inputs (one function for training *and* serving) and
                                 ``LearnedRanker``, the callable the ranking service runs
``learned.registry``             ``<data_dir>/models/<version>/``: model.joblib + meta.json
``labcore.lab.learning_loop``  all of it against a running stack (``feedlab train-ranker``)

Nothing here is imported by ``import labcore``: scikit-learn loads only where a model is trained or
served.
"""
