"""colearn's helper learner modules (its PyTorch X-ray and COVID factories, extracted with
their imports changed) through its MLI factory for one round, in memory or on chain: the
flow of colearn's ``run_demo.py`` (split the data per learner with the dataloader's
``split_to_folders``, ``get_mli`` with JSON parameters, equal weights, an initial result,
a collective round), which cannot run itself: it imports colearn's tf.keras-2-only MNIST
factory at its top.

    python colearn_standins.py colearn_factory_run.py MODEL DATA_DIR in_memory|on_chain
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from pathlib import Path

from colearn_core.grpc.example_mli_factory import ExampleMliFactory
from colearn_core.other.demo_utils import get_split_to_folders
from colearn_core.utils.results import Results, print_results

N_LEARNERS = 3
# Module of each model's factory, by the import rule (colearn_pytorch.X ->
# colearn_core.pytorch.X): importing it registers its dataloader and model.
FACTORY_MODULES = {"PYTORCH_XRAY": "colearn_core.pytorch.pytorch_xray",
                   "PYTORCH_COVID_XRAY": "colearn_core.pytorch.pytorch_covid_xray"}


def main(model: str, data_dir: str, where: str) -> None:
    importlib.import_module(FACTORY_MODULES[model])
    training = importlib.import_module(
        {"in_memory": "colearn_core.training", "on_chain": "agents.experiment.training"}[where])
    factory = ExampleMliFactory()
    print("models:", sorted(factory.get_models()), "dataloaders:",
          sorted(factory.get_dataloaders()))
    dataloader = next(iter(factory.get_compatibilities()[model]))
    folders = get_split_to_folders(dataloader)(
        data_dir=data_dir, n_learners=N_LEARNERS, shuffle_seed=0,
        output_folder=Path(tempfile.mkdtemp(prefix="split-")))
    learners = [factory.get_mli(model_name=model, model_params=json.dumps({}),
                                dataloader_name=dataloader,
                                dataset_params=json.dumps({"location": str(folder),
                                                           "train_ratio": 0.5}))
                for folder in folders]
    training.set_equal_weights(learners)
    results = Results()
    results.data.append(training.initial_result(learners))
    results.data.append(training.collective_learning_round(learners, 0.5, 0))
    print_results(results)
    print("Colearn factory learners finished!")


if __name__ == "__main__":
    main(*sys.argv[1:])
