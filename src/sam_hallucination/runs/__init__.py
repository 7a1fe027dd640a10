"""Layer 4, runs: config, one train step, the training loop, the end-of-training probe,
the full-batch MLP study, named sweeps, the result store and the CLI.
"""
