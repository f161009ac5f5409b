"""``colearn experiment init``'s spec: every field of the spec format, the factories that
ship, values that load; and a factory without its arguments, one line naming them."""

from __future__ import annotations

import importlib
import re

from cli_runner import run_colearn

from agents.chain.network import dev_keys
from agents.devtools.anvil import find_free_port
from agents.experiment.spec import ExperimentSpec, InitialModel, LearnerFactory, SpecOptions
from agents.experiment.template import SHIPPED_FACTORIES, spec_template

UNREACHABLE = f"http://127.0.0.1:{find_free_port()}"
CONTRACT = "0x" + "11" * 20


def run(*argv: str) -> tuple[int, str, str]:
    return run_colearn(*argv, env={"COLUMNS": "200", "COLEARN_PRIVATE_KEY": dev_keys(1)[0][1]})


def assert_one_line(status: int, err: str, expected: int, message: str) -> None:
    assert "Traceback" not in err and status == expected, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err


def test_the_template_names_every_field_and_loads(tmp_path):
    text = spec_template()
    fields = (set(ExperimentSpec.model_fields) | set(InitialModel.model_fields)
              | set(LearnerFactory.model_fields) | set(SpecOptions.model_fields))
    for name in fields:
        assert re.search(rf"^(# )?{name} = |^\[(initial\.)?{name}\]$", text, re.MULTILINE), name
    for target in SHIPPED_FACTORIES:
        module, _, name = target.partition(":")
        assert target in text and callable(getattr(importlib.import_module(module), name))
    (tmp_path / "experiment.toml").write_text(text)
    spec = ExperimentSpec.load(tmp_path / "experiment.toml")
    assert spec.learners == [a for a, _ in dev_keys(4)[1:]]
    assert spec.initial.factory is not None and spec.initial.factory.args["n_learners"] == 3
    assert not spec.options.staked and not spec.options.sealed
    assert spec.initial_weights()  # the digits learner's weights


def test_init_writes_once_and_takes_learners(tmp_path):
    out = tmp_path / "exp.toml"
    a, b = (x for x, _ in dev_keys(3)[1:])
    status, printed, err = run("experiment", "init", "--out", str(out), "--learner", a.lower(),
                               "--learner", b)
    assert status == 0 and "wrote" in printed, err
    assert ExperimentSpec.load(out).learners == [a, b]
    assert "n_learners = 2" in out.read_text()
    status, _, err = run("experiment", "init", "--out", str(out))
    assert_one_line(status, err, 1, "exists: refusing to overwrite it (--force does)")
    assert run("experiment", "init", "--out", str(out), "--force")[0] == 0
    status, _, err = run("experiment", "init", "--out", str(tmp_path / "x"), "--learner", a)
    assert_one_line(status, err, 1, "an experiment needs at least 2 learners")


def test_a_factory_without_its_args_is_one_line(tmp_path):
    text = re.sub(r"^args = .*$", "", spec_template(), flags=re.MULTILINE)
    (tmp_path / "experiment.toml").write_text(text)
    status, _, err = run("experiment", "create", "--rpc", UNREACHABLE, "--contract", CONTRACT,
                         "--spec", str(tmp_path / "experiment.toml"), "--store", "file:unused")
    assert_one_line(status, err, 1, "spec [initial.factory]: learner factory "
                                     "colearn_core.tasks.factories:digits_learner: missing a "
                                     "required argument: 'index'; it accepts index, "
                                     "n_learners, seed, rule, vote_tolerance, update_fraction, "
                                     "update_momentum, logit_adjustment and requires index")
    assert "colearn experiment init" in err


def test_create_help_documents_the_spec():
    status, out, _ = run("experiment", "create", "--help")
    assert status == 0
    for words in ("colearn experiment init", "[initial.factory]", "args = {", "[options]",
                  "colearn_core.tasks.factories:digits_learner", "examples:"):
        assert words in out, words
