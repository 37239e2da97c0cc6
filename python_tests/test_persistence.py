"""Saving over a model is safe at every point: interrupted anywhere, the folder loads as the old model or the
new one, never neither; legacy folders with the un-hashed names still load."""
import errno
import json
import os
import subprocess
import sys

import pytest
import torch

from diffpose_fast import persistence
from diffpose_fast.persistence import CheckpointError, load_folder, save_folder


def _state(seed):
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(7, 5, generator=g), "b": torch.randn(5, generator=g, dtype=torch.float64)}


def _tensors(seed):
    return {"weights_ema": _state(seed), "weights": _state(seed + 100), "hk_stats": _state(seed + 200)}


def _which(folder, old, new):
    """'old' or 'new': which model the folder loads as (fails if it loads as neither)."""
    meta, tensors = load_folder(folder)
    for label, expected, cfg in (("old", old, {"v": 1}), ("new", new, {"v": 2})):
        if meta["config"] == cfg and set(tensors) == set(expected) and all(
                torch.equal(tensors[s][k], expected[s][k]) for s in expected for k in expected[s]):
            return label
    raise AssertionError(f"the folder loads as neither model: config {meta['config']}")


def _count_calls(monkeypatch, name):
    calls = []
    real = getattr(os, name)

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(persistence.os, name, counting)
    return calls


def test_save_writes_hashed_names_and_round_trips(tmp_path):
    tensors = _tensors(0)
    save_folder(tmp_path / "m", {"v": 1}, tensors)
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert set(meta["tensors"]) == set(tensors)
    for stem, name in meta["tensors"].items():
        assert name.startswith(stem + "-") and name.endswith(".safetensors")
        assert meta["files"][name].startswith(name[len(stem) + 1: -len(".safetensors")])
    assert _which(tmp_path / "m", tensors, _tensors(1)) == "old"
    save_folder(tmp_path / "m", {"v": 2}, _tensors(1))
    assert _which(tmp_path / "m", tensors, _tensors(1)) == "new"
    # the old model's files are gone, only the new set and config.json remain
    left = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert left == sorted(["config.json", *json.loads((tmp_path / "m" / "config.json").read_text())["files"]])


@pytest.mark.parametrize("fault", ["exception", "enospc"])
def test_save_interrupted_at_every_write_and_rename_leaves_a_loadable_model(tmp_path, monkeypatch, fault):
    old, new = _tensors(0), _tensors(1)
    folder = tmp_path / "m"
    # how many os.replace / write calls a save makes
    save_folder(folder, {"v": 1}, old)
    with monkeypatch.context() as m:
        replaces = _count_calls(m, "replace")
        save_folder(tmp_path / "probe", {"v": 2}, new)
    assert len(replaces) == len(new) + 1           # one per weight file, then config.json
    outcomes = []
    for n in range(len(replaces)):
        save_folder(folder, {"v": 1}, old)
        count = {"i": 0}
        real_replace, real_fdopen = os.replace, os.fdopen

        def failing_replace(src, dst, *a, **k):
            if count["i"] == n:
                raise KeyboardInterrupt("interrupted")   # a kill at this rename: the temp file stays behind
            count["i"] += 1
            return real_replace(src, dst, *a, **k)

        class _FullDisk:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")

            def __getattr__(self, name):
                return getattr(self.f, name)

        def failing_fdopen(fd, *a, **k):
            f = real_fdopen(fd, *a, **k)
            if count["i"] == n:
                return _FullDisk(f)
            count["i"] += 1
            return f

        with monkeypatch.context() as m:
            if fault == "exception":
                m.setattr(persistence.os, "replace", failing_replace)
                expected = KeyboardInterrupt
            else:
                m.setattr(persistence.os, "fdopen", failing_fdopen)
                expected = OSError
            with pytest.raises(expected):
                save_folder(folder, {"v": 2}, new)
        outcomes.append(_which(folder, old, new))
        # the next save cleans up whatever the interrupted one left and commits
        save_folder(folder, {"v": 2}, new)
        assert _which(folder, old, new) == "new"
        assert not list(folder.glob("*.tmp"))
    assert outcomes == ["old"] * len(replaces)      # every interruption before the commit point keeps the old one


def test_save_killed_in_a_child_process_leaves_a_loadable_model(tmp_path):
    """A real kill (os._exit, no cleanup) at each rename of the save."""
    old, new = _tensors(0), _tensors(1)
    folder = tmp_path / "m"
    seen = set()
    for n in range(len(new) + 2):       # the last n lets the save finish, then the unlink phase is reached
        save_folder(folder, {"v": 1}, old)
        code = (
            "import os, sys, torch\n"
            "from diffpose_fast import persistence\n"
            "sys.path.insert(0, sys.argv[3])\n"
            "from test_persistence import _tensors\n"
            "n, real, calls = int(sys.argv[2]), os.replace, [0]\n"
            "def replace(src, dst):\n"
            "    if calls[0] == n: os._exit(9)\n"
            "    calls[0] += 1; real(src, dst)\n"
            "persistence.os.replace = replace\n"
            "persistence.save_folder(sys.argv[1], {'v': 2}, _tensors(1))\n"
        )
        run = subprocess.run([sys.executable, "-c", code, str(folder), str(n), os.path.dirname(__file__)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode in (0, 9), run.stderr[-800:]
        seen.add(_which(folder, old, new))
    assert seen == {"old", "new"}


def test_legacy_folder_with_unhashed_names_loads(tmp_path):
    from safetensors.torch import save

    folder = tmp_path / "legacy"
    folder.mkdir()
    tensors, files = _tensors(3), {}
    for stem, state in tensors.items():
        (folder / f"{stem}.safetensors").write_bytes(save(state))
        files[f"{stem}.safetensors"] = persistence._sha256(folder / f"{stem}.safetensors")
    (folder / "config.json").write_text(json.dumps({"format": "diffpose_fast", "format_version": 1,
                                                    "config": {"v": 1}, "files": files}))
    assert _which(folder, tensors, _tensors(9)) == "old"
    save_folder(folder, {"v": 2}, _tensors(9))          # saving over it replaces the legacy files too
    assert _which(folder, tensors, _tensors(9)) == "new"
    assert not list(folder.glob("weights.safetensors"))


def test_config_pointing_outside_the_folder_is_refused(tmp_path):
    folder = tmp_path / "m"
    save_folder(folder, {"v": 1}, _tensors(0))
    meta = json.loads((folder / "config.json").read_text())
    meta["tensors"]["weights"] = "../elsewhere.safetensors"
    meta["files"]["../elsewhere.safetensors"] = "0" * 64
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="damaged"):
        load_folder(folder)
