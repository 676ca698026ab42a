"""One module per scenario of the benchmark suite: sNN_name.py with SCENARIO = "N title" and run(context)."""
