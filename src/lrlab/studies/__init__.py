"""Studies: lrlab's measurements that put published claims beside lrlab's runs, a layer on the
public API (each study module imports only `lrlab`'s public names, `lrlab.report` and the
shared code here: `runner`, `verdict`, `published`).

The reproductions of the source documents (``lrlab reproduce NAME``) are `NAMES`, listed
without importing anything heavy (the CLI's parser needs only the names);
`lrlab.studies.experiments.EXPERIMENTS` has the experiments themselves. The other studies
(``lrlab study NAME``: `lr_finder`) are modules with a ``run_study`` function. What each
source published is data, ``data/NAME.toml`` (`lrlab.studies.published`).
"""

NAMES = ("seed-000", "seed-002", "seed-003", "seed-004")
"""Every reproducible source document, by name (``lrlab reproduce NAME``)."""
