"""colearn 0.2.8's own examples, run against this project with only their imports changed,
in memory and on chain.

The test fetches colearn's wheel itself (``pip download``, into a cache outside the
repository: :func:`colearn_port.cache_dir`) and fails when it cannot. It extracts
``colearn_examples/ml_interface/*.py``, rewrites their import lines by the documented
rule (:mod:`colearn_port`; on chain ``colearn.training`` becomes
``agents.experiment.training``) and runs each as a subprocess in colearn's own testing
mode (``COLEARN_EXAMPLES_TEST=1``: one round) with ``MPLBACKEND=Agg``; it passes when the
example exits 0 having printed "Colearn Example Finished!".

Data that cannot be downloaded here is replaced by small local stand-ins in the formats
the examples read (:mod:`colearn_standins`): torchvision's MNIST and CIFAR-10 files, the
Kaggle fraud CSVs, X-ray JPEG folders, the COVID ``.mat`` files and a Boston-housing CSV.
Three stand-ins are not files: torchvision's import skips registering its CUDA-built C++
operators (the only torchvision 0.28.0 to be had is the CUDA build; the examples use only
its pure-Python datasets and transforms), torchvision is given the stand-in CIFAR-10
files' md5 sums in place of the real ones', and ``sklearn.datasets.load_boston`` (removed in
scikit-learn 1.2) serves the Boston CSV. No ``tensorflow_datasets`` stand-in is needed:
every example that loads data with it is tf.keras-2-only (below).

Out of scope, because Keras 3 refuses them (:data:`TF_KERAS_2_ONLY`, asserted exact):
every Keras example passes ``lr=`` to a ``tf.keras`` optimizer (Keras 3 raises "Argument(s)
not recognized: {'lr': ...}"), ``keras_fraud.py`` also ``decay=``, ``keras_mnist_diffpriv``
needs tensorflow-privacy (TF <= 2.15, Keras 2), colearn_keras's MNIST factory imports
``tensorflow.python.keras.applications`` (gone), and ``run_demo.py`` imports both Keras
factory modules at its top.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import colearn_port
import colearn_standins
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(colearn_standins.__file__).resolve()
FACTORY_RUN = RUNNER.parent / "colearn_factory_run.py"
EXAMPLES = "colearn_examples/ml_interface"
FINISHED = "Colearn Example Finished!"
TIMEOUT = 600

# The wheel's files that Keras 3 refuses, each with why and the text that shows it.
TF_KERAS_2_ONLY: dict[str, tuple[str, str]] = {
    f"{EXAMPLES}/keras_cifar.py": ("tf.keras optimizer with lr=", r"\blr=l_rate"),
    f"{EXAMPLES}/keras_fraud.py": ("tf.keras optimizer with lr= and decay=",
                                   r"\blr=l_rate, decay="),
    f"{EXAMPLES}/keras_mnist.py": ("tf.keras optimizer with lr=", r"Adam\(lr=l_rate\)"),
    f"{EXAMPLES}/keras_mnist_diffpriv.py": ("tensorflow-privacy (TF <= 2.15, Keras 2)",
                                            r"from tensorflow_privacy\."),
    f"{EXAMPLES}/keras_xray.py": ("tf.keras optimizer with lr=", r"optimizer\(lr=l_rate\)"),
    f"{EXAMPLES}/run_demo.py": ("imports colearn_keras.keras_mnist and keras_cifar10",
                                r"(?m)^import colearn_keras\.keras_mnist"),
    "colearn_keras/keras_mnist.py": ("tensorflow.python.keras.applications; lr=",
                                     r"from tensorflow\.python\.keras\.applications"),
    "colearn_keras/keras_cifar10.py": ("tf.keras optimizer with lr=", r"\blr=learning_rate"),
}

# In scope: each example's arguments and environment, given the stand-ins' folder.
_IN_SCOPE = ("mli_fraud.py", "mli_random_forest_iris.py", "pytorch_cifar.py",
             "pytorch_covid.py", "pytorch_mnist.py", "pytorch_mnist_diffpriv.py",
             "pytorch_xray.py", "xgb_reg_boston.py")


def _setup(name: str, data: Path) -> tuple[list[str], dict[str, str]]:
    torch_data = {"PYTORCH_DATA_DIR": str(data / "torchvision"), "STANDIN_TORCHVISION": "1"}
    return {
        "mli_fraud.py": ([str(data / "fraud")], {}),
        "mli_random_forest_iris.py": ([], {}),
        "pytorch_cifar.py": ([], {**torch_data, "STANDIN_CIFAR10_MD5":
                                  (data / "cifar10-md5.json").read_text()}),
        "pytorch_covid.py": ([str(data / "covid")], {}),
        "pytorch_mnist.py": ([], torch_data),
        "pytorch_mnist_diffpriv.py": ([], torch_data),
        "pytorch_xray.py": ([str(data / "xray")], {}),
        "xgb_reg_boston.py": ([], {"STANDIN_BOSTON_CSV": str(data / "boston.csv")}),
    }[name]


@pytest.fixture(scope="module")
def wheel() -> Path:
    try:
        return colearn_port.fetch_wheel()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"colearn {colearn_port.VERSION}'s wheel is needed and cannot be had: "
                    f"{exc}")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("colearn-data")
    colearn_standins.write_mnist(folder / "torchvision")
    sums = colearn_standins.write_cifar10(folder / "torchvision")
    (folder / "cifar10-md5.json").write_text(json.dumps(sums))
    colearn_standins.write_fraud(folder / "fraud")
    colearn_standins.write_xray(folder / "xray")
    colearn_standins.write_covid(folder / "covid")
    colearn_standins.write_boston(folder / "boston.csv")
    return folder


def test_the_rule_rewrites_only_colearn_import_lines() -> None:
    source = ("import os\n"
              "from colearn.training import initial_result, collective_learning_round\n"
              "from colearn.utils.results import Results, print_results\n"
              "from colearn_pytorch.pytorch_learner import PytorchLearner\n"
              "import colearn_keras.keras_mnist  # type:ignore # noqa: F401\n"
              "from colearn_other.fraud_dataset import fraud_preprocessing\n"
              "from colearn_grpc.example_mli_factory import ExampleMliFactory\n"
              "    from colearn_pytorch.pytorch_xray import split_to_folders\n"
              "from .utils import auc_from_logits\n"
              "from colearnx import y\n"
              "print('from colearn.training import x')\n"
              "colearn_model = 1  # colearn.training\n")
    assert colearn_port.rewrite_imports(source) == (
        "import os\n"
        "from colearn_core.training import initial_result, collective_learning_round\n"
        "from colearn_core.utils.results import Results, print_results\n"
        "from colearn_core.pytorch.pytorch_learner import PytorchLearner\n"
        "import colearn_core.keras.keras_mnist  # type:ignore # noqa: F401\n"
        "from colearn_core.other.fraud_dataset import fraud_preprocessing\n"
        "from colearn_core.grpc.example_mli_factory import ExampleMliFactory\n"
        "    from colearn_core.pytorch.pytorch_xray import split_to_folders\n"
        "from .utils import auc_from_logits\n"
        "from colearnx import y\n"
        "print('from colearn.training import x')\n"
        "colearn_model = 1  # colearn.training\n")
    on_chain = colearn_port.rewrite_imports(source, on_chain=True).splitlines()
    assert on_chain[1] == ("from agents.experiment.training import initial_result, "
                           "collective_learning_round")
    assert on_chain[2] == "from colearn_core.utils.results import Results, print_results"


def test_the_out_of_scope_list_is_exactly_the_tf_keras_2_only_code(wheel: Path) -> None:
    """Every example is run or listed as tf.keras-2-only, and each listed file shows why."""
    examples = set(colearn_port.members(wheel, rf"{EXAMPLES}/\w+\.py"))
    listed = {p for p in TF_KERAS_2_ONLY if p.startswith(EXAMPLES)}
    assert examples == listed | {f"{EXAMPLES}/{n}" for n in _IN_SCOPE}
    assert not listed & {f"{EXAMPLES}/{n}" for n in _IN_SCOPE}
    with zipfile.ZipFile(wheel) as archive:
        for path, (_, evidence) in TF_KERAS_2_ONLY.items():
            assert re.search(evidence, archive.read(path).decode()), path
        # the Keras factories' helpers are the only tf.keras code outside the examples
        keras = {n for n in archive.namelist() if re.fullmatch(r"colearn_keras/\w+\.py", n)}
    assert keras - set(TF_KERAS_2_ONLY) == {"colearn_keras/__init__.py",
                                            "colearn_keras/keras_learner.py",
                                            "colearn_keras/utils.py",
                                            "colearn_keras/test_keras_learner.py"}


def _fixed_paths() -> set[Path]:
    """Where examples write whatever TMPDIR says: ``xgb_reg_boston.py`` its models
    (``/tmp/model_<learner>_<n>``), ``pytorch_xray.py`` its test split (``/tmp/xray_test``)."""
    tmp = Path("/tmp")
    return {*tmp.glob("model_*_*"), *tmp.glob("xray_test")}


def _run(script: Path, args: list[str], env: dict[str, str], workdir: Path
         ) -> tuple[subprocess.CompletedProcess[str], float]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "COLEARN_EXAMPLES_TEST": "1",
                   "MPLBACKEND": "Agg", "TMPDIR": str(workdir), **env}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(RUNNER), str(script), *args], cwd=workdir,
                          env=environment, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    return done, time.perf_counter() - started


@pytest.mark.parametrize("where", ["in_memory", "on_chain"])
@pytest.mark.parametrize("name", _IN_SCOPE)
def test_example_completes(name: str, where: str, wheel: Path, data: Path,
                           tmp_path: Path) -> None:
    member = f"{EXAMPLES}/{name}"
    colearn_port.extract(wheel, [member], tmp_path, on_chain=where == "on_chain")
    args, env = _setup(name, data)
    before = _fixed_paths()
    try:
        done, seconds = _run(tmp_path / member, args, env, tmp_path)
    finally:
        for path in _fixed_paths() - before:  # what the example left at its fixed paths
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    print(f"{name} {where}: exit {done.returncode} in {seconds:.1f} s")
    assert done.returncode == 0 and FINISHED in done.stdout, (
        f"{name} {where} exited {done.returncode}:\n{done.stdout[-1500:]}\n"
        f"{done.stderr[-4000:]}")


# colearn's PyTorch factory modules (the learners of its run_demo.py and gRPC server).
_FACTORIES = {"PYTORCH_XRAY": ("colearn_pytorch/pytorch_xray.py", "xray/train"),
              "PYTORCH_COVID_XRAY": ("colearn_pytorch/pytorch_covid_xray.py", "covid")}


@pytest.mark.parametrize("where", ["in_memory", "on_chain"])
@pytest.mark.parametrize("model", sorted(_FACTORIES))
def test_factory_learners_complete(model: str, where: str, wheel: Path, data: Path,
                                   tmp_path: Path) -> None:
    """colearn's helper learner modules, extracted with their imports changed and found
    where the rule puts them (``colearn_core.pytorch.pytorch_xray``: the extracted folder
    is added to ``colearn_core.pytorch``'s path), built through the MLI factory
    (:mod:`colearn_factory_run`)."""
    member, folder = _FACTORIES[model]
    colearn_port.extract(wheel, [member], tmp_path)
    paths = {"colearn_core.pytorch": str(tmp_path / "colearn_pytorch")}
    done, seconds = _run(FACTORY_RUN, [model, str(data / folder), where],
                         {"STANDIN_PACKAGE_PATHS": json.dumps(paths)}, tmp_path)
    print(f"{model} {where}: exit {done.returncode} in {seconds:.1f} s")
    assert done.returncode == 0 and "Colearn factory learners finished!" in done.stdout, (
        f"{model} {where} exited {done.returncode}:\n{done.stdout[-1500:]}\n"
        f"{done.stderr[-4000:]}")


def test_a_wheel_that_cannot_be_had_is_an_error_not_a_skip(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLEARN_WHEEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no registry, no local wheels: pip fails
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(RuntimeError, match="cannot download colearn 0.2.8"):
        colearn_port.fetch_wheel()
    (tmp_path / "cache" / colearn_port.WHEEL).write_bytes(b"not the wheel")
    with pytest.raises(RuntimeError, match="delete it to fetch it again"):
        colearn_port.fetch_wheel()
