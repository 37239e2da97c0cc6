"""Safe reading of the field's pickled ``.npz`` files (VideoPose3D, DiffPose, P-STMO layouts).

The Human3.6M and MPI-INF-3DHP files everyone uses store nested dicts as 0-d object arrays, which
``np.load(..., allow_pickle=True)`` unpickles with the full pickle machinery: a crafted file can run any
code on load. ``load_npz`` reads the zip members and ``.npy`` headers itself and unpickles object arrays
with a restricted unpickler that resolves only the handful of globals that plain data needs:

    numpy's ``_reconstruct`` / ``scalar`` helpers (both ``numpy.core`` and ``numpy._core`` spellings),
    ``numpy.ndarray``, ``numpy.dtype`` and ``_codecs.encode`` (bytes in protocol-2 pickles).

Dicts, lists, tuples, strings, bytes, ints, floats, bools and None need no globals at all. Anything else
(``os.system``, ``builtins.eval``, any class) raises :class:`UnsafePickleError` naming the refused global,
before it is ever called.
"""
from __future__ import annotations

import ast
import io
import os
import pickle
import struct
import zipfile
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "load_npz", "safe_unpickle"]

_MAGIC = b"\x93NUMPY"


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowed set (dicts, lists, numbers, strings, numpy arrays)."""


def _numpy_multiarray_attr(name: str):
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return getattr(multiarray, name)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import _codecs

    reconstruct = _numpy_multiarray_attr("_reconstruct")
    scalar = _numpy_multiarray_attr("scalar")
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = reconstruct
        table[(module, "scalar")] = scalar
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    _allowed = None

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if _RestrictedUnpickler._allowed is None:
            _RestrictedUnpickler._allowed = _allowed_globals()
        try:
            return _RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global '{module}.{name}': only dicts, lists, tuples, strings, numbers, "
                "None/bools and numpy arrays are allowed in these data files") from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refusing persistent id {pid!r} in pickle")


def safe_unpickle(stream) -> Any:
    """Unpickle ``stream`` (a binary file object or bytes) admitting only plain data and numpy arrays."""
    if isinstance(stream, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(stream))
    return _RestrictedUnpickler(stream, encoding="latin1").load()


def _read_npy(data: bytes, where: str) -> np.ndarray:
    """Parse one ``.npy`` payload (format versions 1.0, 2.0, 3.0)."""
    if not data.startswith(_MAGIC) or len(data) < 10:
        raise ValueError(f"{where}: not a .npy array (bad magic bytes)")
    major, minor = data[6], data[7]
    if (major, minor) == (1, 0):
        (hlen,), start, encoding = struct.unpack("<H", data[8:10]), 10, "latin1"
    elif (major, minor) in ((2, 0), (3, 0)):
        (hlen,), start, encoding = struct.unpack("<I", data[8:12]), 12, ("latin1" if major == 2 else "utf8")
    else:
        raise ValueError(f"{where}: unsupported .npy format version {major}.{minor}")
    try:
        header = ast.literal_eval(data[start:start + hlen].decode(encoding))
        descr, fortran, shape = header["descr"], bool(header["fortran_order"]), tuple(header["shape"])
        dtype = np.lib.format.descr_to_dtype(descr)
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise ValueError(f"{where}: malformed .npy header: {exc}") from exc
    body = memoryview(data)[start + hlen:]
    if dtype.hasobject:
        array = safe_unpickle(io.BytesIO(body))
        if not isinstance(array, np.ndarray) or array.shape != shape:
            raise ValueError(f"{where}: object payload is not an array of shape {shape}")
        return array
    count = int(np.prod(shape, dtype=np.int64))
    if len(body) < count * dtype.itemsize:
        raise ValueError(f"{where}: truncated array data: expected {count * dtype.itemsize} bytes, "
                         f"got {len(body)}")
    array = np.frombuffer(body, dtype=dtype, count=count).copy()
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)


def load_npz(path: str | os.PathLike) -> dict[str, Any]:
    """Read an ``.npz`` archive without executing code from it.

    Args:
        path: the ``.npz`` file (``np.savez`` / ``np.savez_compressed`` output).

    Returns:
        dict mapping each key to its array; 0-d object arrays (the pickled dicts of the VideoPose3D,
        DiffPose and P-STMO files) are unwrapped to their Python object with ``.item()``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a zip archive of ``.npy`` members.
        UnsafePickleError: an object array references a global outside the allowed set.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_npz: no such file: {path!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"load_npz: {path!r} is not an .npz (zip) archive")
    out: dict[str, Any] = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            key = member[: -len(".npy")]
            array = _read_npy(archive.read(member), f"{path}[{key}]")
            out[key] = array.item() if array.dtype.hasobject and array.ndim == 0 else array
    return out
