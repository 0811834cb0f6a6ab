"""Started with this folder on PYTHONPATH (conftest.py puts it there for the whole run), a CLI
or daemon process a test starts uses the run's cache of the encoder's vectors
(tests/encoded_texts.py) once it imports the encoder: nothing of paperwire's is imported
before that. Any other sitecustomize on the path still runs, and a cache that cannot be opened
leaves the encoder as it is."""

import os
import sys


def _install(encoder) -> None:
    import importlib.util
    from pathlib import Path

    try:
        here = Path(__file__).resolve().parent.parent / "encoded_texts.py"
        spec = importlib.util.spec_from_file_location("_paperwire_tests_encoded_texts", here)
        texts = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(texts)
        load, embed = texts.cached(encoder, texts.SharedVectors(os.environ[texts.ENV]))
    except Exception:  # a scratch file gone with its run: uncached, and nothing said on stderr,
        return  # which tests read
    encoder.load, encoder.SentenceEncoder.embed = load, embed


def _watch_for_the_encoder() -> None:
    import importlib.abc
    import importlib.util

    class CacheTheEncoder(importlib.abc.MetaPathFinder):
        """Finds the encoder module as the other finders would, and patches it once it ran."""

        def find_spec(self, name, path, target=None):
            if name != "paperwire.rank.encoder":
                return None
            sys.meta_path.remove(self)  # the search below, and every later import, as usual
            spec = importlib.util.find_spec(name)
            if spec is None or spec.loader is None:
                return spec
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                _install(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, CacheTheEncoder())


def _next_sitecustomize() -> None:
    """Run the sitecustomize this one hides on the path, if there is one."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


if os.environ.get("PWTEST_FOREIGN_HOSTS"):
    import pwtest_offline  # beside this file: tests reach 127.0.0.1 only

    pwtest_offline.keep_off_the_network()
if os.environ.get("PWTEST_ENCODED_TEXTS"):
    _watch_for_the_encoder()
_next_sitecustomize()
