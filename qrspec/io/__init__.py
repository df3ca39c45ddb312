"""Reading and writing PicoQuant TTTR files (PTU and legacy HT3/HT2/PT3/T3R)."""

from qrspec.io.reader import iter_tttr, open_layout, read_header, read_tttr
from qrspec.io.writer import encode_records, encode_tag, write_ptu

__all__ = ["read_tttr", "iter_tttr", "read_header", "open_layout", "write_ptu", "encode_records",
           "encode_tag"]
