"""The shipped models answer fixed inputs as they did when they were recorded.

A backward-compatibility check in LeRobot's manner: the runtime (CEM noise stream, graph
split and fusion, action scaling, a task model's localiser and goal bank) may be refactored,
but what a shipped model does must not change unnoticed. When a change is meant, regenerate
the record with `.venv/bin/python tests/make_shipped_outputs.py` and say why in the commit.
"""

from __future__ import annotations

import numpy as np
import pytest
from make_shipped_outputs import ARTIFACT, model_outputs, shipped_models

from robot_app.policy import ModelCard

REGENERATE = "if the change is meant, run `.venv/bin/python tests/make_shipped_outputs.py` and say why in the commit"


@pytest.fixture(scope="module")
def recorded():
    with np.load(ARTIFACT) as f:
        return {k: f[k] for k in f.files}


def test_every_shipped_model_is_recorded(recorded):
    names = {key.split("/")[0] for key in recorded} - {"input"}
    assert names == {p.stem for p in shipped_models()}, REGENERATE


@pytest.mark.parametrize("model", shipped_models(), ids=lambda p: p.stem)
def test_a_shipped_model_answers_fixed_inputs_as_recorded(model, recorded):
    sha = str(recorded[f"{model.stem}/onnx_sha256"])
    assert ModelCard.read(model.with_suffix(".json")).onnx_sha256 == sha, f"{model.name} is not the recorded model; {REGENERATE}"
    inputs = {key.split("/", 1)[1]: value for key, value in recorded.items() if key.startswith("input/")}
    now = model_outputs(model, inputs)
    assert sorted(now) == sorted(k.split("/", 1)[1] for k in recorded if k.startswith(f"{model.stem}/")), REGENERATE
    for key in ("proposed_pixel", "q", "act_q"):  # scores: float noise across CPUs only
        if key in now:
            np.testing.assert_allclose(now[key], recorded[f"{model.stem}/{key}"], rtol=0, atol=1e-4,
                                       err_msg=f"{model.name}: {key} changed; {REGENERATE}")
    if "proposed_bank" in now:
        np.testing.assert_array_equal(now["proposed_bank"], recorded[f"{model.stem}/proposed_bank"],
                                      err_msg=f"{model.name}: the proposed goal pictures changed; {REGENERATE}")
    np.testing.assert_allclose(now["act"], recorded[f"{model.stem}/act"], rtol=0, atol=1e-3,
                               err_msg=f"{model.name}: its CEM actions changed; {REGENERATE}")
