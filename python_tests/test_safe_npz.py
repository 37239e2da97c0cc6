"""The safe .npz reader: plain data round-trips, crafted pickles are refused before they run."""
import builtins
import os

import numpy as np
import pytest

from _hostile import ForgedArray, ForgedDtype, write_object_npz
from diffpose_fast.data.safe_npz import UnsafePickleError, load_npz


class _SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_round_trip_nested_dict_and_plain_arrays(tmp_path):
    nested = {"S1": {"Walking 1": np.arange(12, dtype=np.float32).reshape(2, 2, 3),
                     "list": [np.ones((2, 3)), 3, 2.5, None, True, "txt", (1, 2)]},
              "meta": {"num_joints": 17, "sym": [[4, 5], [1, 2]], "scalar": np.float64(0.5)}}
    path = tmp_path / "d.npz"
    np.savez_compressed(path, positions=nested, plain=np.arange(6.0).reshape(2, 3),
                        fortran=np.asfortranarray(np.arange(6).reshape(2, 3)))
    out = load_npz(path)
    assert set(out) == {"positions", "plain", "fortran"}
    np.testing.assert_array_equal(out["plain"], np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(out["fortran"], np.arange(6).reshape(2, 3))
    got = out["positions"]
    np.testing.assert_array_equal(got["S1"]["Walking 1"], nested["S1"]["Walking 1"])
    assert got["S1"]["Walking 1"].dtype == np.float32
    assert got["S1"]["list"][1:] == [3, 2.5, None, True, "txt", (1, 2)]
    assert got["meta"]["sym"] == [[4, 5], [1, 2]] and got["meta"]["scalar"] == 0.5


@pytest.mark.parametrize("payload_cls, refused", [(_SystemPayload, "system"), (_EvalPayload, "builtins.eval")])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload_cls, refused):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npz"
    arr = np.empty((), dtype=object)
    arr[()] = {"positions_3d": {"S1": payload_cls(marker)}}
    np.savez(path, positions_3d=arr)
    with pytest.raises(UnsafePickleError, match=refused):
        load_npz(path)
    assert not marker.exists()


def test_payload_is_live_under_plain_numpy(tmp_path):
    """Control: the eval payload really executes under np.load(allow_pickle=True)."""
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npz"
    arr = np.empty((), dtype=object)
    arr[()] = _EvalPayload(marker)
    np.savez(path, x=arr)
    np.load(path, allow_pickle=True)["x"]
    assert marker.exists()


def test_clear_errors_for_missing_and_non_zip(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_npz(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not an .npz"):
        load_npz(bad)


def test_numpy1_module_names_and_protocol2_pickles():
    import pickle

    from diffpose_fast.data.safe_npz import safe_unpickle

    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [b"raw", np.int64(3)]}
    for protocol in (2, 3, 4):
        blob = pickle.dumps(obj, protocol=protocol)
        datas = [blob]
        if protocol < 4:   # text GLOBAL opcodes: files written by numpy 1.x name numpy.core.multiarray
            datas.append(blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
            assert b"numpy.core.multiarray" in datas[-1]
        for data in datas:
            got = safe_unpickle(data)
            np.testing.assert_array_equal(got["a"], obj["a"])
            assert got["b"] == [b"raw", 3]


# --- hostile pickles that reach numpy's own __setstate__ (the outside attack's segfault) ---------------------

def test_object_dtype_without_reference_flags_is_refused_in_a_fresh_process(tmp_path):
    """A dtype 'O' whose state clears its reference flags turns raw bytes into object pointers: numpy itself
    segfaults on the first access. The reader must refuse it (run in a child so a crash fails the test)."""
    import subprocess
    import sys

    path = tmp_path / "crash.npz"
    forged = ForgedDtype("O8", (3, "|", None, None, None, -1, -1, 0))
    write_object_npz(path, ForgedArray((1, (2,), forged, False, b"\x41" * 16)), (2,))
    code = ("import sys\nfrom diffpose_fast.data.safe_npz import load_npz, UnsafePickleError\n"
            "try:\n    out = load_npz(sys.argv[1]); print(repr(out['x'][0]))\n"
            "except UnsafePickleError as exc:\n    print('refused:', exc)\n")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"child died with {run.returncode}: {run.stderr[-500:]}"
    assert run.stdout.startswith(f"refused: {path}[x]: refusing an object array"), run.stdout


@pytest.mark.parametrize("name, state, match", [
    ("f8", (3, "<", None, ("a",), {"a": (None, 0)}, 8, 1, 0), "structured"),
    ("f8", (3, "<", (None, (2,)), None, None, -1, -1, 0), "structured or sub-array"),
    ("f8", (3, "!", None, None, None, -1, -1, 0), "byte order"),
    ("f8", "not a tuple", "malformed numpy dtype state"),
    ("V8", (3, "|", None, None, None, -1, -1, 0), "refusing numpy dtype 'V8'"),
    ("M8[ns]", (3, "<", None, None, None, -1, -1, 0), "refusing numpy dtype"),
])
def test_forged_dtype_states_are_refused(name, state, match):
    import pickle

    from diffpose_fast.data.safe_npz import safe_unpickle

    blob = pickle.dumps(ForgedArray((1, (1,), ForgedDtype(name, state), False, b"\x00" * 8)), protocol=2)
    with pytest.raises(UnsafePickleError, match=match):
        safe_unpickle(blob)


@pytest.mark.parametrize("state, match", [
    ((1, (3,), "DTYPE", False, b"\x00" * 16), "expected 24 bytes"),         # data shorter than the shape
    ((1, (-1,), "DTYPE", False, b""), "shape"),
    ((1, (1 << 20, 1 << 20), "DTYPE", False, b""), "limit"),
    ((1, (2,), "not a dtype", False, b"\x00" * 16), "dtype"),
    ((1, (0,), "DTYPE", False, b"", "extra"), "malformed numpy array state"),
    ((1, (2,)), "malformed numpy array state"),
])
def test_forged_array_states_are_refused(state, match):
    import pickle

    from diffpose_fast.data.safe_npz import safe_unpickle

    f8 = ForgedDtype("f8", (3, "<", None, None, None, -1, -1, 0))
    state = tuple(f8 if part == "DTYPE" else part for part in state)
    with pytest.raises(UnsafePickleError, match=match):
        safe_unpickle(pickle.dumps(ForgedArray(state), protocol=2))


def test_truncated_and_deeply_nested_pickles_are_refused():
    import pickle

    from diffpose_fast.data.safe_npz import safe_unpickle

    blob = pickle.dumps({"a": np.arange(5.0)}, protocol=3)
    with pytest.raises(UnsafePickleError, match="malformed pickle"):
        safe_unpickle(blob[: len(blob) // 2])
    # 100,000 nested lists: pickle builds them without recursion; reading them back must not overflow
    deep = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
    with pytest.raises(UnsafePickleError, match="nested too deeply"):
        safe_unpickle(deep)


def test_plain_data_in_every_allowed_dtype_round_trips():
    import pickle

    from diffpose_fast.data.safe_npz import safe_unpickle

    rng = np.random.default_rng(7)
    arrays = [rng.normal(size=(3, 4)).astype(d) for d in ("<f4", ">f8", "<f2", "c16")]
    arrays += [rng.integers(-100, 100, size=5).astype(d) for d in ("i1", ">i2", "u4", "<i8")]
    arrays += [rng.random(4) > 0.5, np.array(["ab", "cde"]), np.array([b"x", b"yz"]),
               np.asfortranarray(rng.normal(size=(2, 3)))]
    shared = np.arange(3.0)
    obj = {"arrays": arrays, "shared": [shared, shared], "scalars": (np.float32(1.5), np.int16(-3)),
           "objects": np.array([{"k": np.ones(2)}, [1, 2]], dtype=object)}
    for protocol in (2, 3, 4):
        got = safe_unpickle(pickle.dumps(obj, protocol=protocol))
        for a, b in zip(got["arrays"], arrays):
            assert a.dtype == b.dtype and a.flags.f_contiguous == b.flags.f_contiguous
            np.testing.assert_array_equal(a, b)
        assert got["shared"][0] is got["shared"][1]
        assert got["scalars"] == (1.5, -3) and got["scalars"][0].dtype == np.float32
        np.testing.assert_array_equal(got["objects"][0]["k"], np.ones(2))
        assert got["objects"][1] == [1, 2]


def test_empty_arrays_round_trip_in_protocol_2():
    import pickle

    from diffpose_fast.data.safe_npz import safe_unpickle

    got = safe_unpickle(pickle.dumps({"e": np.zeros((0, 17, 3), np.float32), "b": b""}, protocol=2))
    assert got["e"].shape == (0, 17, 3) and got["e"].dtype == np.float32 and got["b"] == b""
