"""Architecture search: Optuna proposes, the cost model filters, Ray Tune trains (``nas search``).

``driver.run_search`` is the entry point; ``settings`` merges its options into the space's settings,
``searcher`` holds the ask/tell logic, ``samplers`` the sampler registry, ``events`` the listener protocol,
``objective`` one trial, ``tuning`` the Ray Tune glue, ``storage`` and ``resume`` the Optuna storage of a
study, ``budgets`` the costs and limits. What a search leaves on disk is read and written by :mod:`nas.results`.
Submodules are imported on use.
"""
