from __future__ import annotations

import pytest
import yaml

from weakseg.config import dump_yaml, load_config, to_dict
from weakseg.config.io import ConfigProblems, config_from_dict, diff_configs, parse_override
from weakseg.errors import WeaksegError


def test_defaults_and_typed_overrides() -> None:
    cfg = load_config(None, ["train.steps=20", "model.width=0.5", "train.betas=[0.9, 0.99]", "data.mnist.source=null"])
    assert cfg.train.steps == 20 and isinstance(cfg.train.steps, int)
    assert cfg.model.width == 0.5 and cfg.train.betas == [0.9, 0.99] and cfg.data.mnist.source is None


def test_int_promoted_to_float_but_not_string_to_int() -> None:
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(WeaksegError, match="train.steps.*integer"):
        load_config(None, ["train.steps=many"])


def test_exponent_without_dot_is_a_number() -> None:
    """YAML 1.1 reads ``1e-4`` as a string; float keys still take it, and a word still fails."""
    assert load_config(None, ["train.lr=1e-4"]).train.lr == pytest.approx(1e-4)
    with pytest.raises(WeaksegError, match="train.lr.*number"):
        load_config(None, ["train.lr=fast"])


def test_unknown_key_lists_valid_keys_and_close_match() -> None:
    with pytest.raises(WeaksegError) as err:
        load_config(None, ["train.step=3"])
    msg = str(err.value)
    assert "'train.step'" in msg and "did you mean 'steps'" in msg and "batch_size" in msg


def test_unknown_section() -> None:
    with pytest.raises(WeaksegError, match="unknown config key 'trian'"):
        load_config(None, ["trian.steps=3"])


@pytest.mark.parametrize("bad", ["0", "1.5", "-0.1"])
def test_labeled_fraction_outside_unit_interval(bad: str) -> None:
    with pytest.raises(WeaksegError, match=r"labeled_fraction must be in \(0, 1\].*--set"):
        load_config(None, [f"data.mnist.labeled_fraction={bad}"])


def test_preset_is_applied_under_the_config(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"data": {"preset": "mnist48_hard", "mnist": {"n_clutter": 3}}}))
    cfg = load_config(path)
    assert cfg.data.mnist.size_clutter == 14      # from the preset
    assert cfg.data.mnist.n_clutter == 3          # the config wins over its preset
    assert load_config(path, ["data.preset=mnist128"]).data.mnist.canvas == 128


def test_unknown_preset_lists_available() -> None:
    with pytest.raises(WeaksegError, match="unknown preset 'mnist99'.*mnist48_simple"):
        load_config(None, ["data.preset=mnist99"])


def test_shipped_configs_load() -> None:
    for name in ("mnist48_simple", "mnist48_hard", "mnist128"):
        cfg = load_config(f"mnist/{name}_seg_only")
        assert cfg.data.preset == name and cfg.method == "seg_only"
    assert load_config("mnist/mnist128_seg_only").model.depth == 5


def test_missing_and_malformed_files(tmp_path) -> None:
    with pytest.raises(WeaksegError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(WeaksegError, match="not valid YAML"):
        load_config(bad)


def test_base_files_merge(tmp_path) -> None:
    (tmp_path / "base.yaml").write_text("train: {steps: 7, batch_size: 3}\n")
    (tmp_path / "exp.yaml").write_text("_base_: base.yaml\ntrain: {steps: 9}\n")
    cfg = load_config(tmp_path / "exp.yaml")
    assert (cfg.train.steps, cfg.train.batch_size) == (9, 3)


def test_round_trip_through_yaml(tmp_path) -> None:
    cfg = load_config(None, ["train.steps=11", "model.kwargs={segmenter: separate}"])
    dump_yaml(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert diff_configs(to_dict(cfg), to_dict(again)) == []
    assert config_from_dict(to_dict(cfg)) == cfg


def test_parse_override_needs_equals() -> None:
    with pytest.raises(WeaksegError, match="KEY=VALUE"):
        parse_override("train.steps")


def test_bare_off_is_read_as_the_word_off() -> None:
    assert load_config(None, ["train.amp=off"]).train.amp == "off"
    with pytest.raises(WeaksegError, match="train.amp"):
        load_config(None, ["train.amp=on"])


def test_labeled_pool_and_dice_weight_are_checked_before_any_work() -> None:
    with pytest.raises(WeaksegError, match=r"train.labeled_pool must be one of 'labelled', 'any_positive', got 'sick'"
                                           r"(.|\n)*smile.dice_weight must be a finite number >= 0, got -1.0"):
        load_config(None, ["train.labeled_pool=sick", "smile.dice_weight=-1"])


def test_stored_configs_from_before_issue_21_rebuild_as_they_were_trained() -> None:
    from weakseg.config.io import config_from_dict, to_dict, upgrade_stored_config

    old = to_dict(load_config("organs/smile", ["smile.pos_weight=[3,10,30]"]))
    del old["smile"]["calibrate_pos_weight"]                                   # as stored before the key existed
    del old["marginal"]
    cfg = config_from_dict(upgrade_stored_config(old))
    assert cfg.smile.calibrate_pos_weight is False and cfg.model.kwargs == {"dropout": 0.1, "head_channels": "image"}
    assert cfg.marginal.exclusion_weight == 0.2                               # new section: today's default
    new = to_dict(load_config("organs/smile"))
    assert upgrade_stored_config(new) == new                                  # a complete config is unchanged
    old["model"]["kwargs"]["head_channels"] = 32
    assert upgrade_stored_config(old)["model"]["kwargs"]["head_channels"] == 32



def test_smiler_rounds_stored_with_paths_in_their_config_rebuild_without_them() -> None:
    from weakseg.config.io import config_from_dict, to_dict, upgrade_stored_config

    old = to_dict(load_config("organs/smiler"))
    del old["train"]["init_from"]
    old["smiler"] |= {"round": 2, "pseudo_labels": "/gone/run/pseudo/round_2/pseudo.pt",
                      "init_from": "/gone/run/round_1/checkpoints/last.pt"}
    upgraded = upgrade_stored_config(old)
    assert not {"pseudo_labels", "init_from"} & set(upgraded["smiler"])      # not needed to rebuild the run
    cfg = config_from_dict(upgraded)
    assert cfg.train.init_from == "/gone/run/round_1/checkpoints/last.pt" and cfg.smiler.round == 2
    old["smiler"] |= {"round": 0, "pseudo_labels": None, "init_from": None}     # a run's top-level config.yaml
    assert config_from_dict(upgrade_stored_config(old)).train.init_from is None

def test_mnist_label_unit_and_labeled_sources_are_checked_before_any_work() -> None:
    with pytest.raises(WeaksegError, match=r"data.mnist.label_unit must be one of 'source', 'canvas', got 'pixel'"):
        load_config(None, ["data.mnist.label_unit=pixel"])
    with pytest.raises(WeaksegError, match=r"data.mnist.labeled_sources applies only with data.mnist.label_unit=canvas"):
        load_config(None, ["data.mnist.labeled_sources=10"])
    with pytest.raises(WeaksegError, match=r"data.mnist.labeled_sources must be >= 1, got 0"):
        load_config(None, ["data.mnist.label_unit=canvas", "data.mnist.labeled_sources=0"])


@pytest.mark.parametrize("name", ["mnist48_simple", "mnist48_hard", "mnist128"])
def test_v2_presets_are_the_paper_protocol_and_keep_the_design_presets(name: str) -> None:
    """The issue-20 presets count labels in canvases (59,500 training, 500 validation); the §16 presets
    they derive from still count source digits on the fold's own sizes."""
    old = load_config(f"mnist/{name}_seg_only").data.mnist
    assert (old.label_unit, old.n_train, old.n_valid) == ("source", None, None)
    for suffix, digits in (("_v2", [9]), ("_v2_alldigits", list(range(10)))):
        m = load_config(f"mnist/{name}_seg_only", [f"data.preset={name}{suffix}"]).data.mnist
        assert (m.label_unit, m.n_train, m.n_valid, m.labeled_fraction) == ("canvas", 59500, 500, 0.01)
        assert m.labeled_digits == digits and m.canvas == old.canvas


def test_type_and_range_problems_come_in_one_list() -> None:
    """An out-of-range value beside a mistyped key is in the first message, not a second one after a fix."""
    with pytest.raises(ConfigProblems) as err:
        load_config(None, ["train.stepz=3", "train.batch_size=0", "train.lr=fast", "model.width=-1"])
    problems = err.value.problems
    assert len(problems) == 4, problems
    assert any("'train.stepz'" in p and "did you mean 'steps'" in p for p in problems)
    assert any("'train.lr' must be a number" in p for p in problems)
    assert "train.batch_size must be >= 1, got 0" in problems
    assert "model.width must be > 0, got -1.0" in problems
    assert str(err.value).startswith("4 config problems:")


def test_a_bad_value_does_not_raise_range_problems_of_its_own() -> None:
    """A mistyped value falls back to its default while the ranges are checked: no invented second problem."""
    with pytest.raises(ConfigProblems) as err:
        load_config(None, ["train.batch_size=four"])
    assert err.value.problems == ["config key 'train.batch_size' must be an integer, got 'four'"]


def test_mistyped_config_name_suggests_the_closest_config() -> None:
    with pytest.raises(WeaksegError, match=r"did you mean configs/mnist/mnist48_simple_seg_only\.yaml\?"):
        load_config("mnist48_simpel_seg_only")
    with pytest.raises(WeaksegError, match=r"did you mean configs/organs/smile\.yaml\?"):
        load_config("configs/organs/smiel.yaml")


@pytest.mark.parametrize("method", ["seg_only", "ae", "mean_teacher", "genseg", "genseg_sepdec"])
def test_mnist_configs_differ_between_presets_only_in_the_preset(method: str) -> None:
    # The MNIST configs share one method file each (configs/mnist/_methods/); only the AE at 128 px has its
    # own Dice weight (the reference's).
    from weakseg.config.io import to_dict

    for preset in ("mnist48_hard", "mnist128"):
        other = to_dict(load_config(f"mnist/{preset}_{method}"))
        simple = to_dict(load_config(f"mnist/mnist48_simple_{method}", [f"data.preset={preset}"]))
        if preset == "mnist128" and method == "ae":
            assert (other["ae"]["lambda_seg"], simple["ae"]["lambda_seg"]) == (0.01, 1.0)
            other["ae"]["lambda_seg"] = 1.0
        assert other == simple


def test_the_old_pool_key_is_accepted_with_a_warning_naming_both_keys(tmp_path) -> None:
    with pytest.warns(FutureWarning, match=r"train.labelled_pool is now spelled train.labeled_pool"):
        assert load_config(None, ["train.labelled_pool=any_positive"]).train.labeled_pool == "any_positive"
    (tmp_path / "old.yaml").write_text("train:\n  labelled_pool: any_positive\n  steps: 3\n")
    with pytest.warns(FutureWarning, match=r"old.yaml: config key train.labelled_pool is now spelled train.labeled_pool"):
        cfg = load_config(tmp_path / "old.yaml", ["train.labeled_pool=labelled"])
    assert cfg.train.labeled_pool == "labelled" and cfg.train.steps == 3          # --set still wins


def test_stored_configs_with_the_old_pool_key_upgrade_silently() -> None:
    import warnings

    from weakseg.config.io import config_from_dict, to_dict, upgrade_stored_config

    old = to_dict(load_config(None, ["train.labeled_pool=any_positive"]))
    old["train"]["labelled_pool"] = old["train"].pop("labeled_pool")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        upgraded = upgrade_stored_config(old)
    assert "labelled_pool" not in upgraded["train"]
    assert config_from_dict(upgraded).train.labeled_pool == "any_positive"
