"""The safe .npz reader: plain data round-trips, crafted pickles are refused before they run."""
import builtins
import os

import numpy as np
import pytest

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
