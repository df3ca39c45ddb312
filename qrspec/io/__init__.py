"""Reading and writing PicoQuant TTTR files (PTU and legacy HT3/HT2/PT3/T3R).

The names below are imported on first use (PEP 562), so that ``qrspec.io.files`` and
``qrspec.io.atomic`` (used by every command's input/output checks) do not import numba.
"""

import importlib

_LAZY = {"read_tttr": "qrspec.io.reader", "iter_tttr": "qrspec.io.reader",
         "read_header": "qrspec.io.reader", "open_layout": "qrspec.io.reader",
         "write_ptu": "qrspec.io.writer", "encode_records": "qrspec.io.writer",
         "encode_tag": "qrspec.io.writer"}

__all__ = ["read_tttr", "iter_tttr", "read_header", "open_layout", "write_ptu", "encode_records",
           "encode_tag"]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qrspec.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
