"""One run at a time on an output folder: the run lock (filelock)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from geoseg.errors import OutputError
from geoseg.workflow import load_workflow, run_workflow
from geoseg.workflow._state import _locked

GEOSEG = str(Path(sys.executable).parent / "geoseg")


@pytest.mark.slow
def test_second_run_on_one_folder_fails_at_once(tmp_path: Path) -> None:
    wf = tmp_path / "w.yaml"
    wf.write_text(
        yaml.safe_dump({"workflow": "w", "steps": [{"name": "a", "kind": "synthetic", "size": 64}]})
    )
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\nfrom geoseg.workflow._state import _locked\n"
         "with _locked(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(120)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        p = subprocess.run([GEOSEG, "run", str(wf), "--out-dir", str(out)], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, p.stderr
        assert "another `geoseg run` is using this output folder" in lines[0] and str(out) in lines[0]
        with pytest.raises(OutputError, match="another `geoseg run`"), _locked(out):
            pass
    finally:
        holder.kill()  # a killed run leaves no stale lock behind: the OS drops it
        holder.wait()
    assert run_workflow(load_workflow(wf, out)).ran == ["a"]
    with _locked(out), pytest.raises(OutputError), _locked(out):  # one at a time in one process too
        pass
