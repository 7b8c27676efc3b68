"""Reproductions of the source documents' experiments, with their published numbers.

`NAMES` lists them without importing anything heavy (the CLI's parser needs only the names);
`lrlab.studies.experiments.EXPERIMENTS` has the experiments themselves.
"""

NAMES = ("seed-000", "seed-002", "seed-003", "seed-004")
