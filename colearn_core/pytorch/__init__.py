"""colearn's ``colearn_pytorch`` package under this project's one import rule
(``colearn_pytorch.X`` -> ``colearn_core.pytorch.X``). Importing a submodule imports torch;
this package itself imports nothing."""
