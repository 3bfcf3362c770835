"""The error trees: every exception class of classify and features lives in an errors module."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

import classify
import classify.errors
import features
import features.errors


def _modules(package):
    yield package
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), f"{package.__name__}."):
        if info.name.endswith("__main__"):
            continue  # running it is the command line
        yield importlib.import_module(info.name)


def _exception_classes(module):
    return [obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == module.__name__]


@pytest.mark.parametrize("package", [classify, features], ids=lambda p: p.__name__)
def test_exception_classes_are_defined_only_in_errors_modules(package):
    stray = {module.__name__: [c.__name__ for c in _exception_classes(module)]
             for module in _modules(package)
             if module.__name__ not in ("classify.errors", "features.errors")}
    assert {name: found for name, found in stray.items() if found} == {}


@pytest.mark.parametrize(("errors", "root"), [(classify.errors, classify.errors.ClassifyError),
                                              (features.errors, features.errors.FeaturesError)])
def test_every_specific_error_subclasses_the_root_and_a_builtin(errors, root):
    # A Ctrl-C is not an error: ExtractionInterrupted stays a KeyboardInterrupt,
    # so that no "except Exception" swallows it.
    specific = [c for c in _exception_classes(errors)
                if c is not root and not issubclass(c, KeyboardInterrupt)]
    assert specific
    for cls in specific:
        assert issubclass(cls, root), cls
        builtins = [b for b in cls.__mro__ if b.__module__ == "builtins" and b not in (object, BaseException,
                                                                                     Exception)]
        assert builtins, f"{cls.__name__} subclasses no built-in error"
        # The docstring's promise: "also subclassing the matching built-in".
        assert cls.__doc__ and cls.__doc__.strip()
