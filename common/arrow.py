"""Arrow helpers shared by stages that must not import each other."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def group_codes(table: pa.Table, keys: list[str]) -> np.ndarray:
    """One int64 per distinct combination of ``keys`` (a series: site, device[, lane]), from
    dictionary codes: no Python strings. Equal rows get equal codes; the order means nothing."""
    code = np.zeros(table.num_rows, dtype=np.int64)
    for k in keys:
        col = table[k].combine_chunks()
        if pa.types.is_integer(col.type):
            idx = pc.fill_null(col, -1).to_numpy(zero_copy_only=False).astype(np.int64) + 1
            size = int(idx.max()) + 1 if len(idx) else 1
        else:
            enc = pc.dictionary_encode(pc.fill_null(col, ""))
            idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
            size = len(enc.dictionary)
        code = code * max(size, 1) + idx
    return code
