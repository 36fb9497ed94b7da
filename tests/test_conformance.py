"""The conformance kit (dse.testing) over every registered space and metric provider."""

from __future__ import annotations

import inspect

import pytest
from conftest import reference_data

from dse.registry import PROXIES, SIMULATORS, SPACES
from dse.subset import restrict
from dse.testing import check_provider, check_space

#: parameters a plugin needs (or takes to stay fast here); every other plugin runs on defaults
SPACE_PARAMS = {
    "nasbench201": {"dataset": "cifar10"},
    "torch": {
        "factory": "dse_test_plugins:small_cnn",
        "input_shape": [3, 16, 16],
        "choices": {"depth": [1, 2], "width": [4, 8]},
    },
}
#: provider -> (space it is checked on, its parameters)
PROVIDERS = {
    "tabular": ("nasbench201", {"file": "nasbench201_naslib.csv", "column": "val_acc_cifar10"}),
    "medusa": ("medusa", {"samples": 200}),
    "proxy_fitness": (
        "eproxy_config",
        {"truth": "nasbench201_naslib.csv", "column": "val_acc_cifar10", "archs": 3},
    ),
    "eproxy": ("nasbench201", {"batch_size": 4}),
    "gennas": ("nasbench201", {"batch_size": 4}),
    "trained_accuracy": ("nasbench201", {"epochs": 1, "resolution": 8, "batch_size": 256}),
    "proxy_ensemble": (
        "nasbench201",
        {"components": ["synflow", "params"], "weights": [1.0, 0.5], "batch_size": 8},
    ),
}
SLOW = {"proxy_fitness", "gennas", "eproxy"}
ZERO_COST_BATCH = 8
TEST_PLUGINS = {"slow_params", "flaky", "always_fails", "nan_score"}


@pytest.mark.parametrize("name", SPACES.names())
def test_every_registered_space_conforms(name):
    check_space(SPACES.create(name, **SPACE_PARAMS.get(name, {})))


def _providers():
    for registry in (PROXIES, SIMULATORS):
        for name in registry.names():
            if name in TEST_PLUGINS:  # the suite's own test plugins
                continue
            marks = [pytest.mark.slow] if name in SLOW else []
            yield pytest.param(registry, name, id=name, marks=marks)


@pytest.mark.parametrize("registry, name", list(_providers()))
@pytest.mark.slow
def test_every_registered_provider_conforms(registry, name):
    space_name, params = PROVIDERS.get(name, ("nasbench201", {}))
    params = {
        k: str(reference_data(v)) if isinstance(v, str) and v.endswith(".csv") else v
        for k, v in params.items()
    }
    entry = registry.get(name)
    if name not in PROVIDERS and _takes_batch(entry):  # zero-cost proxies: a small batch
        params["batch_size"] = ZERO_COST_BATCH
    provider = entry.factory(**params)
    space = SPACES.create(space_name, **SPACE_PARAMS.get(space_name, {}))
    if name == "tabular":  # a table covers only its listed cells
        space = restrict(space, {"file": params["file"], "column": "arch_str"})
    archs = check_space(space, samples=2)
    check_provider(provider, space, archs)


def _takes_batch(entry) -> bool:
    try:
        return "batch_size" in inspect.signature(entry.factory).parameters
    except (TypeError, ValueError):
        return False
