"""colearn's ``colearn_keras`` package under this project's one import rule
(``colearn_keras.X`` -> ``colearn_core.keras.X``). Importing a submodule imports Keras
(and TensorFlow); this package itself imports nothing."""
