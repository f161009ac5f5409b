"""colearn's ``colearn.utils``: results, plots and data helpers at colearn's paths."""
