"""Results of experiments: collect run folders into tidy tables, aggregate, draw.

Reads only files the runs wrote (``metrics.csv``, ``latency_quantiles.csv``,
``episodes.csv``, ``config.json``, ``state.json``, ``job.json``); never imports the
simulator, the learners or Flower, so results can be analysed anywhere.
"""
