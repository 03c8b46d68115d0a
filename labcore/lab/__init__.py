"""Running and teaching the lab (not the feed itself).

``runtime``         the embedded profile: the whole stack in one process (``feedlab up``)
``cli``             ``feedlab``: up, down, status, seed, check, grade, bench, train-ranker
``client``          ``labcore.connect()``: a notebook's handle on the running stack
``world``           a deterministic synthetic social world, and how it is loaded
``simulator``       seeded readers with hidden tastes, using the feed through the API
``learning_loop``   simulate → label → train → register → A/B (``feedlab train-ranker``)
``faults``          taking an in-process backend down on purpose
``grading``         ``feedlab grade``: the exercises' score table
``notebook_check``  ``feedlab check``: the course under papermill against a fresh stack
"""
