"""Hostile files the tests write themselves: pickles that reach numpy's own __setstate__ with forged state."""
import numpy as np


class ForgedDtype:
    """Pickles as numpy.dtype(name) followed by a hand-written __setstate__ state."""

    def __init__(self, name, state):
        self.name, self.state = name, state

    def __reduce__(self):
        return (np.dtype, (self.name, False, True), self.state)


class ForgedArray:
    """Pickles as numpy's _reconstruct(ndarray) followed by a hand-written array state."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct
        return (_reconstruct, (np.ndarray, (0,), b"b"), self.state)


def write_object_npz(path, payload, shape):
    """An .npz whose member x.npy has an object-dtype header of ``shape`` and ``payload`` pickled as its body."""
    import io
    import pickle
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": shape})
    buf.write(pickle.dumps(payload, protocol=3))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", buf.getvalue())
