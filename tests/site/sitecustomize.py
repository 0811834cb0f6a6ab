"""Started with this folder on PYTHONPATH (conftest.py puts it there for the whole run), a CLI
or daemon process a test starts uses the run's cache of the encoder's vectors
(tests/encoded_texts.py) once it imports the encoder: no import happens here before that, so
what a process imports is what it would import without the cache."""

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

_MODULE = "paperwire.rank.encoder"


class _CacheTheEncoder(importlib.abc.MetaPathFinder):
    """Finds the encoder module as the other finders would, and patches it once it has run."""

    def find_spec(self, name, path, target=None):
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)  # the search below, and every later import, go as usual
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _install(module)

        spec.loader.exec_module = exec_module
        return spec


def _install(encoder) -> None:
    here = Path(__file__).resolve().parent.parent / "encoded_texts.py"
    spec = importlib.util.spec_from_file_location("_paperwire_tests_encoded_texts", here)
    texts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(texts)
    load, embed = texts.cached(encoder, texts.SharedVectors(os.environ[texts.ENV]))
    encoder.load, encoder.SentenceEncoder.embed = load, embed


if os.environ.get("PWTEST_ENCODED_TEXTS"):
    sys.meta_path.insert(0, _CacheTheEncoder())
