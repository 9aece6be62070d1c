"""Every implementation module registered for a kernel family (numpy reference, numba,
CUDA) exports exactly its family's contract (``tinygen.backend.kernels.CONTRACTS``).

A module's exports are its public callables defined in a kernel module: those it
defines and those it re-exports from a sibling implementation.  Tools it imports
(numba's njit, ``launch``, ``parallel_range``, ``array_module``) and classes (the weight
layouts) are not exports.

``KNOWN_EXTRAS`` lists what today's modules export beyond their contract, each with
why it is there; the test fails when a module exports anything else *and* when a
listed extra goes away, so the list only shrinks, deliberately.
"""
import importlib
import inspect

import pytest

from tinygen.backend import kernels as K

IMPLEMENTATION_PACKAGES = ("tinygen.backend.reference.", "tinygen.backend.numba_kernels.",
                           "tinygen.backend.cuda_kernels.")
# Modules of those packages that are machinery, not kernel families.
MACHINERY = {f"tinygen.backend.cuda_kernels.{name}"
             for name in ("launch", "aot", "nvrtc", "emulator", "source")}
MACHINERY.add("tinygen.backend.numba_kernels.chunks")   # the CPU thread pool

# (family, module) -> public functions beyond the contract, today.
KNOWN_EXTRAS = {
    # The pieces the fused train_stats/backward_stats are composed of on the CPU, and
    # the composition shared by reference and numba; tests compare them piece by piece.
    ("batch_norm", "tinygen.backend.reference.batch_norm"):
        {"channel_stats", "backward_reduce", "finish_train_stats", "finish_train_forward",
         "finish_backward_stats"},
    ("batch_norm", "tinygen.backend.numba_kernels.batch_norm"):
        {"channel_stats", "backward_reduce", "finish_train_stats", "finish_train_forward",
         "finish_backward_stats"},
    # Only the CUDA kernel tests call these two (the op uses the fused entry points).
    ("batch_norm", "tinygen.backend.cuda_kernels.batch_norm"):
        {"channel_stats", "backward_reduce"},
    # u^T W v and the vector normalisation: the kernel tests' oracle pieces.
    ("spectral_norm", "tinygen.backend.reference.spectral_norm"): {"normalize", "sigma"},
    # ... and the CUDA module's fused iteration + sigma (kernel tests and benchmarks).
    ("spectral_norm", "tinygen.backend.cuda_kernels.spectral_norm"):
        {"normalize", "sigma", "power_iteration_sigma"},
    # Layout and argument checks shared between the implementations and their tests.
    ("wavenet", "tinygen.backend.reference.wavenet"):
        {"check_step", "check_weights", "ring_layout"},
    ("wavenet", "tinygen.backend.numba_kernels.wavenet"):
        {"check_step", "ring_layout", "multiply_adds"},
    # ... and the CUDA module's fused sampling (generate/sample: kernel tests only).
    ("wavenet", "tinygen.backend.cuda_kernels.wavenet"):
        {"check_step", "check_weights", "ring_layout", "multiply_adds", "generate", "sample"},
}


def exports(module):
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.isclass(value) or inspect.ismodule(value):
            continue
        origin = getattr(value, "__module__", None) or ""
        if callable(value) and origin.startswith(IMPLEMENTATION_PACKAGES) \
                and origin not in MACHINERY:
            names.add(name)
    return names


def registered_modules():
    """(family, module name) of every implementation registered, each once."""
    seen = []
    for family, devices in K._REGISTRY.items():
        for impls in devices.values():
            for module in impls.values():
                name = module if isinstance(module, str) else module.__name__
                if (family, name) not in seen:
                    seen.append((family, name))
    return seen


def test_every_registered_family_has_a_contract_and_every_contract_a_family():
    assert set(K._REGISTRY) == set(K.CONTRACTS)
    for family, names in K.CONTRACTS.items():
        assert names and len(set(names)) == len(names), family


def test_both_devices_have_implementations_of_every_family():
    families = {family for family, _ in registered_modules()}
    for family in K.CONTRACTS:
        aliased = {device for (f, device, _) in K._ALIASES if f == family}
        assert set(K._REGISTRY[family]) | aliased >= {"cpu", "cuda"}, family
    assert families == set(K.CONTRACTS)


def problems(family, module):
    """What is wrong with ``module`` as an implementation of ``family`` (empty: nothing)."""
    found = exports(module)
    contract = set(K.CONTRACTS[family])
    known = KNOWN_EXTRAS.get((family, module.__name__), set())
    extras = found - contract
    messages = []
    if contract - found:
        messages.append(f"{module.__name__} lacks {sorted(contract - found)} of the {family} "
                        "contract")
    if extras - known:
        messages.append(f"{module.__name__} exports {sorted(extras - known)} beyond the "
                        f"{family} contract {sorted(contract)}")
    if known - extras:
        messages.append(f"{sorted(known - extras)} of {module.__name__} are gone: delete them "
                        "from KNOWN_EXTRAS")
    return messages


@pytest.mark.parametrize("family, module_name", registered_modules())
def test_each_implementation_exports_exactly_its_contract(family, module_name):
    assert problems(family, importlib.import_module(module_name)) == []


def test_the_check_sees_a_missing_and_an_extra_function():
    import types

    fake = types.ModuleType("tinygen.backend.reference.conv")
    exec("from tinygen.backend import array_module\n"
         "from tinygen.backend.cuda_kernels.launch import launch\n"
         "from tinygen.backend.reference.pooling import gather_plane\n"
         "def conv2d_forward(): pass\ndef conv2d_input_grad(): pass\n"
         "def _private(): pass\n", fake.__dict__)
    for name in ("conv2d_forward", "conv2d_input_grad", "_private"):
        getattr(fake, name).__module__ = fake.__name__
    assert problems("conv", fake) == [
        "tinygen.backend.reference.conv lacks ['conv2d_weight_grad'] of the conv contract",
        "tinygen.backend.reference.conv exports ['gather_plane'] beyond the conv contract "
        "['conv2d_forward', 'conv2d_input_grad', 'conv2d_weight_grad']",
    ]


def test_the_cuda_batch_norm_docstring_names_the_contract():
    # It used to list channel_stats and backward_reduce as the family's functions.
    doc = importlib.import_module("tinygen.backend.cuda_kernels.batch_norm").__doc__
    assert "tinygen.backend.kernels.CONTRACTS" in doc
