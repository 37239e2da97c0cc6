"""Safe reading of the field's pickled ``.npz`` files (VideoPose3D, DiffPose, P-STMO layouts).

The Human3.6M and MPI-INF-3DHP files everyone uses store nested dicts as 0-d object arrays, which
``np.load(..., allow_pickle=True)`` unpickles with the full pickle machinery: a crafted file can run any
code on load. ``load_npz`` reads the zip members and ``.npy`` headers itself and unpickles object arrays
with a restricted unpickler.

Dicts, lists, tuples, strings, bytes, ints, floats, bools and None need no globals at all. The only globals
resolved are the names numpy's pickles use for arrays, dtypes and scalars (``numpy.ndarray``, ``numpy.dtype``,
``_reconstruct`` and ``scalar`` under both the ``numpy.core`` and ``numpy._core`` spellings) and
``_codecs.encode`` and an argument-less ``bytes`` (bytes in protocol-2 pickles); and none of them is numpy's own: each resolves to a
stand-in here that records its arguments, checks them, and builds the array itself with ``np.frombuffer``.
numpy's ``dtype.__setstate__`` and ``ndarray.__setstate__`` are never called on pickled state, because a
malformed state there crashes the process (a dtype "O" whose flags say it holds no references turns the raw
bytes that follow into object pointers). Allowed dtypes: booleans, integers, floats, complex, fixed-width
bytes and unicode, and object arrays whose elements are themselves plain data. Anything else (``os.system``,
``builtins.eval``, any class, structured or sub-array dtypes) raises :class:`UnsafePickleError` before it
is ever called.
"""
from __future__ import annotations

import ast
import io
import os
import pickle
import re
import struct
import zipfile
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "load_npz", "safe_unpickle"]

_MAGIC = b"\x93NUMPY"
_MAX_ELEMENTS = 1 << 31          # elements in one pickled array (8 GiB of float32): beyond it a file is refused
_DTYPE_NAME = re.compile(r"^(b1|\?|[iu][1248]|f[248]|f16|c(8|16|32)|[SU]\d*|O\d*)$")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something outside plain data (dicts, lists, numbers, strings, numeric numpy arrays)."""


class _DTypeSpec:
    """What a pickle's ``numpy.dtype(name, align, copy)`` call builds: a checked name, then a checked state."""

    __slots__ = ("dtype",)

    def __init__(self, name=None, align=False, copy=True):
        if not isinstance(name, str) or not _DTYPE_NAME.match(name):
            raise UnsafePickleError(f"refusing numpy dtype {name!r}: only bool, integer, float, complex, bytes, "
                                    "unicode and object dtypes are allowed")
        self.dtype = np.dtype(name)

    def __setstate__(self, state):
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]) in numpy >= 1.7;
        # older pickles carry fewer trailing entries. Only the byte order and a flexible type's size are used.
        if not isinstance(state, tuple) or not 5 <= len(state) <= 9 or not isinstance(state[1], str):
            raise UnsafePickleError(f"refusing malformed numpy dtype state {state!r}")
        if any(part is not None for part in state[2:5]) or (len(state) == 9 and state[8] is not None):
            raise UnsafePickleError("refusing a structured or sub-array numpy dtype: only plain dtypes are allowed")
        order = state[1]
        if order not in ("<", ">", "|", "="):
            raise UnsafePickleError(f"refusing numpy dtype byte order {order!r}")
        if self.dtype.kind in "SU" and self.dtype.itemsize == 0 and len(state) >= 6:
            size = state[5]
            if not isinstance(size, int) or not 0 < size <= 1 << 20:
                raise UnsafePickleError(f"refusing a flexible numpy dtype of size {size!r}")
            self.dtype = np.dtype(f"{self.dtype.kind}{size // (4 if self.dtype.kind == 'U' else 1)}")
        if order in "<>" and self.dtype.kind not in "OSb":
            self.dtype = self.dtype.newbyteorder(order)


class _ArraySpec:
    """What ``_reconstruct(ndarray, ...)`` builds: the array is made from its checked state by ``_materialise``."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]                      # (version, shape, dtype, fortran, data)
        if not isinstance(state, tuple) or len(state) != 4:
            raise UnsafePickleError("refusing malformed numpy array state")
        shape, spec, fortran, data = state
        if (not isinstance(shape, tuple) or not all(isinstance(n, int) and 0 <= n for n in shape)
                or not isinstance(spec, _DTypeSpec)):
            raise UnsafePickleError(f"refusing numpy array state with shape {shape!r} and dtype {spec!r}")
        count = 1
        for n in shape:
            count *= n
        if count > _MAX_ELEMENTS:
            raise UnsafePickleError(f"refusing a pickled array of shape {shape} ({count} elements; the limit is "
                                    f"{_MAX_ELEMENTS})")
        dtype, order = spec.dtype, ("F" if fortran else "C")
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != count:
                raise UnsafePickleError(f"refusing an object array of shape {shape} whose data is not a list of "
                                        f"{count} items")
            array = np.empty(count, dtype=object)
            for i, item in enumerate(data):
                array[i] = item
        else:
            if isinstance(data, str):              # protocol-2 pickles of Python 2 files: latin-1 text
                data = data.encode("latin1")
            if not isinstance(data, (bytes, bytearray)) or len(data) != count * dtype.itemsize:
                got = len(data) if isinstance(data, (bytes, bytearray)) else type(data).__name__
                raise UnsafePickleError(f"refusing a numpy array of shape {shape} and dtype {dtype}: expected "
                                        f"{count * dtype.itemsize} bytes of data, got {got}")
            array = np.frombuffer(bytes(data), dtype=dtype, count=count).copy()
        self.array = array.reshape(shape, order=order)


def _reconstruct(cls, shape=(0,), typecode=b"b"):
    if cls is not np.ndarray:
        raise UnsafePickleError(f"refusing to reconstruct {cls!r}: only numpy.ndarray is allowed")
    return _ArraySpec()


def _scalar(spec, data=None):
    if not isinstance(spec, _DTypeSpec) or spec.dtype.hasobject:
        raise UnsafePickleError("refusing a numpy scalar that is not of a plain numeric, bytes or unicode dtype")
    if isinstance(data, str):
        data = data.encode("latin1")
    if not isinstance(data, (bytes, bytearray)) or len(data) != spec.dtype.itemsize:
        raise UnsafePickleError(f"refusing a numpy {spec.dtype} scalar of {len(data) if data else 0} bytes")
    return np.frombuffer(bytes(data), dtype=spec.dtype, count=1)[0]


def _encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError("refusing _codecs.encode other than latin-1 text to bytes")
    return text.encode("latin1")


def _empty_bytes(*args):
    if args:
        raise UnsafePickleError("refusing bytes(...) with arguments: protocol-2 pickles call it only for b''")
    return b""


def _allowed_globals() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,          # only ever passed to _reconstruct, which checks it
        ("numpy", "dtype"): _DTypeSpec,
        ("_codecs", "encode"): _encode,
        ("__builtin__", "bytes"): _empty_bytes,    # protocol 2 writes b"" as bytes()
        ("builtins", "bytes"): _empty_bytes,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = _reconstruct
        table[(module, "scalar")] = _scalar
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        try:
            return _RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global '{module}.{name}': only dicts, lists, tuples, strings, numbers, "
                "None/bools and numpy arrays are allowed in these data files") from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refusing persistent id {pid!r} in pickle")


def _materialise(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    """``obj`` with every stand-in replaced by the array or dtype it checked (shared references stay shared).
    Recursive: a file nested too deeply raises RecursionError, which ``safe_unpickle`` turns into a refusal."""
    memo = {} if memo is None else memo
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, _ArraySpec):
        if obj.array is None:
            raise UnsafePickleError("refusing a numpy array whose state was never set")
        memo[id(obj)] = out = obj.array
        if out.dtype.hasobject:
            flat = out.reshape(-1)
            for i in range(flat.size):
                flat[i] = _materialise(flat[i], memo)
        return out
    if isinstance(obj, _DTypeSpec):
        return obj.dtype
    if isinstance(obj, list):
        memo[id(obj)] = obj
        for i, item in enumerate(obj):
            obj[i] = _materialise(item, memo)
    elif isinstance(obj, dict):
        memo[id(obj)] = obj
        for key, item in obj.items():
            obj[key] = _materialise(item, memo)
    elif isinstance(obj, tuple):
        memo[id(obj)] = out = tuple(_materialise(item, memo) for item in obj)
        return out
    return obj


def safe_unpickle(stream) -> Any:
    """Unpickle ``stream`` (a binary file object or bytes) admitting only plain data and numpy arrays.

    Raises:
        UnsafePickleError: a global, dtype or array state outside plain data, or a malformed pickle.
    """
    if isinstance(stream, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(stream))
    try:
        return _materialise(_RestrictedUnpickler(stream, encoding="latin1").load())
    except UnsafePickleError:
        raise
    except RecursionError:
        raise UnsafePickleError("refusing a pickle nested too deeply") from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError, UnicodeDecodeError) as exc:
        raise UnsafePickleError(f"malformed pickle: {type(exc).__name__}: {exc}") from None


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
        try:
            array = safe_unpickle(io.BytesIO(body))
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{where}: {exc}") from None
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
