"""docs/formats.md keeps up with the formats the code reads and writes.

Each check takes the names from the code: dataclass fields, module constants, the keys of
a bag and a store written by the real `write_episode` and `build_dataset`, and, for code
that needs torch or the simulator to run (training/, robot_app/expert_agreement.py), the
keys of the dict literals it builds, read from its source with `ast`. A field added to a
format without a line in the page fails here, naming the field. Fast: no torch, no
simulator, no ROS.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from episode_fixtures import synthetic_episode

from robot_app import bags, dataset_build, evaluation, goal_proposal, policy, spec, store
from robot_app.camera import PinholeCamera
from robot_app.cem import CEMSettings

ROOT = Path(__file__).resolve().parents[1]
DOC_PATH = ROOT / "docs" / "formats.md"


@pytest.fixture(scope="module")
def doc() -> str:
    assert DOC_PATH.is_file(), f"{DOC_PATH} is missing"
    return DOC_PATH.read_text()


def missing_names(doc: str, names) -> list[str]:
    """Names that do not appear in the page as `name` (in backticks)."""
    return sorted(n for n in set(names) if f"`{n}`" not in doc)


def assert_documented(doc: str, names, what: str) -> None:
    missing = missing_names(doc, names)
    assert not missing, f"docs/formats.md does not document {what}: {', '.join(missing)}"


def table_rows(doc: str) -> dict[str, list[list[str]]]:
    """`name` -> the cells of every table row whose first cell is exactly `name`."""
    rows: dict[str, list[list[str]]] = {}
    for line in doc.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if cells[0].count("`") == 2 and cells[0].startswith("`") and cells[0].endswith("`"):
                rows.setdefault(cells[0][1:-1], []).append(cells)
    return rows


def assert_rows(doc: str, names, what: str) -> None:
    """Every name has a row of its own in one of the page's tables (a mention in prose is not enough)."""
    rows = table_rows(doc)
    missing = sorted(n for n in set(names) if n not in rows)
    assert not missing, f"docs/formats.md has no table row for {what}: {', '.join(missing)}"


def assert_row_value(doc: str, name: str, value: str, what: str) -> None:
    """A table row for `name` whose second cell is `value`."""
    rows = table_rows(doc).get(name, [])
    assert rows, f"docs/formats.md has no table row for {what} `{name}`"
    assert any(len(r) > 1 and r[1] == value for r in rows), (
        f"docs/formats.md's row for {what} `{name}` does not give {value} (has {[r[1:2] for r in rows]})")


# ---------------------------------------------------------------- reading source with ast


def _source(relative: str) -> ast.Module:
    return ast.parse((ROOT / relative).read_text(), filename=relative)


def _find(tree: ast.AST, qualname: str) -> ast.AST:
    """The function or class `qualname` ("Class.method" allowed) in a parsed module."""
    node = tree
    for part in qualname.split("."):
        found = [n for n in ast.iter_child_nodes(node)
                 if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == part]
        assert found, f"{qualname}: no {part!r} found (renamed? update tests/test_formats_doc.py)"
        node = found[0]
    return node


def _keys(d: ast.Dict) -> list[str]:
    return [k.value for k in d.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]


def dict_keys(relative: str, qualname: str, target: str | None = None) -> list[str]:
    """String keys of the dict literals in a function: all of them, or those assigned to `target`
    (a name, or an attribute such as "self._pending")."""
    keys: list[str] = []
    for node in ast.walk(_find(_source(relative), qualname)):
        if target is None:
            if isinstance(node, ast.Dict):
                keys += _keys(node)
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(ast.unparse(t) == target for t in targets):
                keys += _keys(node.value)
    assert keys, f"{relative}: {qualname} builds no dict{'' if target is None else ' ' + target} any more"
    return keys


def subscript_assignments(relative: str, qualname: str, name: str) -> list[str]:
    """Keys k of every `name["k"] = ...` in a function."""
    keys = []
    for node in ast.walk(_find(_source(relative), qualname)):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if (isinstance(t, ast.Subscript) and ast.unparse(t.value) == name
                        and isinstance(t.slice, ast.Constant) and isinstance(t.slice.value, str)):
                    keys.append(t.slice.value)
    assert keys, f"{relative}: {qualname} assigns no {name}[...] any more"
    return keys


def module_constant(relative: str, name: str):
    for node in _source(relative).body:
        if isinstance(node, ast.Assign) and any(ast.unparse(t) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{relative}: no module constant {name}")


def class_constant(relative: str, qualname: str, name: str):
    for node in _find(_source(relative), qualname).body:
        if isinstance(node, ast.Assign) and any(ast.unparse(t) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{relative}: {qualname} has no {name}")


def dataclass_fields_from_source(relative: str, qualname: str) -> list[str]:
    return [n.target.id for n in _find(_source(relative), qualname).body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]


# ---------------------------------------------------------------- a real bag and store


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """A bag written by write_episode, and a store built from it by build_dataset (plus a
    path that is no bag, so the manifest's skipped entry is a real one)."""
    root = tmp_path_factory.mktemp("formats")
    bag = bags.write_episode(root / "bags" / "ep0", synthetic_episode(steps=3, success=True), start_ns=10**9)
    with bags.BagReader(bag) as reader:
        topics, custom = reader.topics, reader.custom_data
    dataset_build.build_dataset([root / "bags", root / "not_a_bag"], root / "store", progress=False)
    manifest = json.loads((root / "store" / "manifest.json").read_text())
    return {"topics": topics, "custom": custom, "manifest": manifest, "store": root / "store"}


# ---------------------------------------------------------------- 1. bags


def test_every_episode_topic_is_documented_with_its_type(doc, built):
    expected = {**spec.EPISODE_TOPICS, spec.Topics.TASK_SUCCESS: spec.TASK_SUCCESS_TYPE}
    assert built["topics"] == expected, "write_episode's topics differ from EPISODE_TOPICS + task/success"
    for topic, msgtype in expected.items():
        assert_row_value(doc, topic, f"`{msgtype}`", "the episode topic")


def test_bag_metadata_roles_encodings_and_storages_are_documented(doc, built):
    assert_documented(doc, built["custom"], "the bag metadata custom_data keys write_episode writes")
    assert_documented(doc, [bags.CUSTOM_TASK, bags.CUSTOM_BEHAVIOURS, bags.CUSTOM_SCALING, bags.CUSTOM_OBJECTS], "the CUSTOM_* bag keys")
    assert_documented(doc, dataset_build.ROLES, "the dataset build topic roles (--topic ROLE=...)")
    assert_documented(doc, bags._ENCODINGS, "the image encodings a bag may use")
    assert_documented(doc, spec.FINGER_JOINT_NAMES, "the finger joint names joint_states must carry")
    for storage in bags.STORAGES:
        assert f'"{storage}"' in doc, f"docs/formats.md does not name the bag storage {storage!r}"


# ---------------------------------------------------------------- 2. the store


def test_every_store_array_is_documented_with_its_dtype(doc, built):
    arrays = {**store.ARRAYS, **store.OPTIONAL_ARRAYS}
    written = {p.name.removesuffix(".npy") for p in built["store"].glob("*.npy")}
    assert written <= set(arrays), f"the store holds arrays that ARRAYS/OPTIONAL_ARRAYS omit: {written - set(arrays)}"
    for name, dtype in arrays.items():
        assert_row_value(doc, f"{name}.npy", f"`{np.dtype(dtype).name}`", "the store array")


def test_every_manifest_key_is_documented(doc, built):
    manifest = built["manifest"]
    assert_rows(doc, manifest, "the store manifest.json keys")
    assert_rows(doc, manifest["episodes"][0], "the manifest's per-episode record keys")
    assert manifest["skipped"], "the build should have skipped the path that is not a bag"
    assert_documented(doc, manifest["skipped"][0], "the manifest's skipped-bag entry keys")
    assert_rows(doc, manifest["action_scaling"], "the manifest's action_scaling keys")


# ---------------------------------------------------------------- 3. model card and ONNX contract


def test_every_model_card_field_is_documented(doc):
    assert_rows(doc, [f.name for f in dataclasses.fields(policy.ModelCard)], "ModelCard fields")


def test_action_scaling_and_cem_fields_are_documented_with_their_defaults(doc):
    for settings in (spec.DEFAULT_SCALING, CEMSettings()):
        for name, value in dataclasses.asdict(settings).items():
            assert_row_value(doc, name, json.dumps(value), f"{type(settings).__name__} field (default)")


def test_network_config_fields_are_documented(doc):
    fields = dataclass_fields_from_source("training/networks.py", "NetworkConfig")
    assert_rows(doc, fields, "the card's network keys (NetworkConfig fields)")


def test_onnx_inputs_and_output_are_documented_with_their_types(doc):
    for name in policy.INPUT_NAMES:
        assert_row_value(doc, name, f"`{policy._INPUT_TYPES[name]}`", "the ONNX input")
    assert f"`{policy.OUTPUT_NAME}`" in doc, f"docs/formats.md does not name the ONNX output `{policy.OUTPUT_NAME}`"


# ---------------------------------------------------------------- 4. goal proposer


def test_goal_proposer_keys_written_and_read_are_documented(doc):
    written = dict_keys("training/localiser.py", "build_task_model", target="proposer")
    assert_rows(doc, written, "the card's goal_proposer keys (training/localiser.py build_task_model)")
    load = _find(_source("robot_app/goal_proposal.py"), "GoalProposer.load")
    read = set()
    for node in ast.walk(load):
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "spec" and isinstance(node.slice, ast.Constant):
            read.add(node.slice.value)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "spec.get":
            read.add(node.args[0].value)
    assert read, "GoalProposer.load reads no spec keys any more"
    assert read <= set(written), f"GoalProposer.load reads goal_proposer keys task-goals never writes: {read - set(written)}"
    assert_documented(doc, read, "the goal_proposer keys GoalProposer.load reads")


def test_localiser_bank_and_camera_are_documented(doc, tmp_path):
    assert_documented(doc, [goal_proposal.LOCALISER_INPUT, goal_proposal.LOCALISER_OUTPUT], "the localiser graph's names")
    bank = goal_proposal.GoalBank(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 2), np.float32))
    bank.save(tmp_path / "bank.npz")
    with np.load(tmp_path / "bank.npz") as f:
        assert_rows(doc, f.files, "the goal bank .npz arrays")
    assert_documented(doc, [f.name for f in dataclasses.fields(PinholeCamera)], "PinholeCamera fields")
    camera = PinholeCamera.from_file(ROOT / "config" / "sim_camera.yaml", 64)
    assert_documented(doc, camera.to_dict(), "the camera keys of a card's goal_proposer")


# ---------------------------------------------------------------- 5. runs and checkpoints


def test_checkpoint_keys_are_documented(doc):
    weights = dict_keys("training/runner.py", "weights_payload")
    assert_rows(doc, weights, "checkpoint keys (training/runner.py weights_payload)")
    assert_rows(doc, dict_keys("training/runner.py", "_checkpoint", target="payload"),
                      "step checkpoint keys (training/runner.py _checkpoint)")
    assert_documented(doc, dict_keys("training/runner.py", "_rng_state"), "the checkpoint's rng entry keys")
    finetune = dict_keys("training/finetune.py", "_payload")  # weights_payload's keys (above) and "finetune"
    assert_documented(doc, finetune, "fine-tuning checkpoint keys (training/finetune.py _payload)")
    assert_rows(doc, dict_keys("training/finetune.py", "finetune", target="info"),
                      "the fine-tuning checkpoint's finetune record keys")


def test_best_json_and_eval_csv_are_documented(doc):
    assert_rows(doc, dict_keys("training/runner.py", "Evaluator.__call__", target="self._pending"),
                      "best.json keys (training/runner.py Evaluator)")
    assert_documented(doc, class_constant("training/runner.py", "Evaluator", "COLUMNS"), "eval.csv columns")


# ---------------------------------------------------------------- 6. evaluation JSON


def test_evaluation_json_keys_are_documented(doc):
    family = evaluation.family_summary([True, False], [10, 50], [(0.2, 0.01), (0.2, 0.3)])
    assert_rows(doc, family, "the evaluation's per-family keys (family_summary)")
    assert_rows(doc, dict_keys("robot_app/evaluation.py", "evaluate_suite", target="results"),
                "the evaluation JSON's top-level keys (evaluate_suite)")
    assert_rows(doc, subscript_assignments("training/commands/evaluate.py", "run", "results")
                + subscript_assignments("training/commands/evaluate.py", "_judge", "results")
                + subscript_assignments("training/commands/evaluate.py", "_evaluate_run_checkpoint", "results"),
                "the evaluation JSON keys robot-app eval adds")
    expert = dict_keys("robot_app/expert_agreement.py", "expert_agreement")
    expert += dict_keys("robot_app/expert_agreement.py", "_phase_summary")
    assert_documented(doc, expert, "the expert_agreement keys")


# ---------------------------------------------------------------- version constants


@pytest.mark.parametrize("name, value", [
    ("STORE_FORMAT_VERSION", store.STORE_FORMAT_VERSION),
    ("CARD_FORMAT_VERSION", policy.CARD_FORMAT_VERSION),
    ("CHECKPOINT_FORMAT", module_constant("training/runner.py", "CHECKPOINT_FORMAT")),
    ("OPSET", policy.OPSET),
    ("CONTROL_HZ", spec.CONTROL_HZ),
    ("EE_HEIGHT_SCALE_M", spec.EE_HEIGHT_SCALE_M),
    ("FINGER_MAX_OPENING_M", spec.FINGER_MAX_OPENING_M),
])
def test_constants_are_documented_with_their_values(doc, name, value):
    assert f"{name} = {value!r}" in doc, f"docs/formats.md does not give {name} = {value!r}"
