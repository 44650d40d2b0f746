"""Data shipped with the simulator; a package so Hydra finds ``scenarios/`` in it.

``conf/config.yaml`` adds ``pkg://envs.data`` to Hydra's search path, and each
``conf/scenario/<name>.yaml`` names ``scenarios/<name>``: the worlds are the
simulator's data (``envs.scenario.load_scenario`` reads the same files), and ``conf``
only selects one.
"""
