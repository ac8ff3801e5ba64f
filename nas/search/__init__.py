"""Architecture search: Optuna proposes, the cost model filters, Ray Tune trains (``nas search``).

``driver.run_search`` is the entry point; ``searcher`` holds the ask/tell logic,
``objective`` one trial, ``study`` the study directory, ``pareto`` the front.
Submodules are imported on use so that ``import nas.search.pareto`` stays light.
"""
