"""Optuna studies: ``run`` (trials and the ``learnsyn study`` command's work), ``space`` (what a
study searches), ``storage`` (SQLite, journal file, PostgreSQL; slot locks; summaries)."""
