"""Load, validate, override and save configs.

Order of precedence, lowest first: dataclass defaults < the preset file named by ``data.preset``
(``configs/presets/<name>.yaml``) < the YAML file (and its ``_base_`` files) < ``--set key=value``.
YAML is read with ``yaml.safe_load`` only. Unknown keys are errors that list the valid keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from weakseg.config.choices import choice_problems
from weakseg.config.schema import Config
from weakseg.errors import WeaksegError

_BASE_KEY = "_base_"

#: Former spellings of config keys, accepted with a ``FutureWarning`` (stored configs are renamed silently).
RENAMED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {("train", "labelled_pool"): ("train", "labeled_pool")}


def _renamed_warning(old: tuple[str, ...], new: tuple[str, ...], where: str) -> None:
    warnings.warn(f"{where}config key {'.'.join(old)} is now spelled {'.'.join(new)}; the old key will stop "
                  f"working in a later version", FutureWarning, stacklevel=4)


def current_key(key: str) -> str:
    """The dotted ``key`` as spelled today (``train.labelled_pool`` -> ``train.labeled_pool``)."""
    return ".".join(RENAMED_KEYS.get(tuple(key.split(".")), key.split(".")))


def rename_old_keys(raw: Mapping[str, Any], *, where: str = "", warn: bool = True) -> dict[str, Any]:
    """``raw`` with every former key (``RENAMED_KEYS``) moved to its new name; the new key wins when both exist."""
    out = dict(raw)
    for old, new in RENAMED_KEYS.items():
        section = out.get(old[0])
        if not (isinstance(section, Mapping) and old[1] in section):
            continue
        if warn:
            _renamed_warning(old, new, where)
        moved = {k: v for k, v in section.items() if k != old[1]}
        out[old[0]] = {new[1]: section[old[1]], **moved}
    return out


def configs_root() -> Path:
    """The folder holding ready-made configs: ``$WEAKSEG_CONFIGS`` or the repository's ``configs/``."""
    env = os.environ.get("WEAKSEG_CONFIGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "configs"


def list_presets() -> list[str]:
    folder = configs_root() / "presets"
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve_config_path(name: str | os.PathLike[str]) -> Path:
    """A config path as given, or a name relative to ``configs/`` (with or without ``.yaml``)."""
    path = Path(name)
    candidates = [path, configs_root() / path, configs_root() / f"{path}.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    raise WeaksegError(f"config file {str(name)!r} not found (also looked in {configs_root()}); "
                       + closest_config_hint(name))


def closest_config_hint(name: str | os.PathLike[str]) -> str:
    """"did you mean configs/...?" with the ready-made config nearest to ``name`` (difflib), or the list's start."""
    root = configs_root()
    # presets/ and shared fragments (folders starting with "_", e.g. mnist/_methods/) are not configs to train
    known = sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml")
                   if not any(part == "presets" or part.startswith("_")
                              for part in p.relative_to(root).parts[:-1])) if root.is_dir() else []
    if not known:
        return "pass the path of a YAML config file"
    typed = Path(name).as_posix().removesuffix(".yaml").removesuffix(".yml")
    typed = typed.split("configs/", 1)[-1]
    by_stem = {k.rsplit("/", 1)[-1]: k for k in known}
    match = (difflib.get_close_matches(typed, known, n=1, cutoff=0.6)
             or [by_stem[m] for m in difflib.get_close_matches(Path(typed).name, by_stem, n=1, cutoff=0.6)])
    shown = root.name if root.parent == Path(__file__).resolve().parents[3] else str(root)
    if match:
        return f"did you mean {shown}/{match[0]}.yaml?"
    folders = sorted({k.split("/", 1)[0] for k in known if "/" in k})
    return (f"pass a YAML path such as {shown}/{known[0]}.yaml (ready-made configs are in {shown}/"
            f"{{{','.join(folders)}}}/)")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except yaml.constructor.ConstructorError as err:   # e.g. !!python/object: never executed, refused here
        found = re.search(r"'([^']+)'", err.problem or "")
        tag = " " + found.group(1).replace("tag:yaml.org,2002:", "!!") if found else ""
        raise WeaksegError(f"{path}: unsupported YAML tag{tag} ({str(err.problem_mark).strip()}); configs are read "
                           "with a safe loader that builds only plain values: remove the tag") from None
    except yaml.YAMLError as err:
        raise WeaksegError(f"{path}: not valid YAML ({str(err).splitlines()[0]}); fix the syntax") from None
    except OSError as err:
        raise WeaksegError(f"{path}: cannot read config ({err.strerror})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise WeaksegError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    return raw


def _load_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise WeaksegError(f"{path}: circular {_BASE_KEY} chain")
    raw = rename_old_keys(_read_yaml(path), where=f"{path}: ")
    bases = raw.pop(_BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        if not base_path.is_file():
            raise WeaksegError(f"{path}: {_BASE_KEY} file {base!r} not found at {base_path}")
        merged = deep_merge(merged, _load_with_bases(base_path, seen + (path,)))
    return deep_merge(merged, raw)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``over`` wins. Neither input is modified."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.steps=20"`` -> (["train", "steps"], 20); the value is parsed as YAML (typed later)."""
    if "=" not in text:
        raise WeaksegError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.steps=20")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise WeaksegError(f"--set {text!r}: empty key; expected KEY=VALUE, e.g. --set train.steps=20")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    out = dict(raw)
    for text in overrides:
        keys, value = parse_override(text)
        if (renamed := current_key(".".join(keys))) != ".".join(keys):
            _renamed_warning(tuple(keys), tuple(renamed.split(".")), f"--set {text!r}: ")
            keys = renamed.split(".")
        patch: Any = value
        for k in reversed(keys):
            patch = {k: patch}
        out = deep_merge(out, patch)
    return out


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key_error(where: str, key: str, valid: Sequence[str]) -> WeaksegError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return WeaksegError(f"unknown config key {where + key!r}{hint} Valid keys under "
                        f"{where.rstrip('.') or 'the top level'}: {', '.join(valid)}")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for a in non_none:
            try:
                return _coerce(value, a, where)
            except WeaksegError as err:
                errors.append(str(err))
        raise WeaksegError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise WeaksegError(f"config section {where!r} must be a mapping, got {value!r}")
        return _build(tp, value, where + ".")
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise WeaksegError(f"config key {where!r} must be a list, got {value!r}")
        return [_coerce(v, args[0] if args else Any, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise WeaksegError(f"config key {where!r} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise WeaksegError(f"config key {where!r} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise WeaksegError(f"config key {where!r} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):           # YAML 1.1 reads 1e-6 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise WeaksegError(f"config key {where!r} must be a number, got {value!r}")
    if origin is typing.Literal:             # the values are checked with the ranges (config.choices)
        return _coerce(value, str, where) if all(isinstance(v, str) for v in args) else value
    if tp is str:
        if isinstance(value, bool):          # YAML reads a bare off/on/no/yes as a boolean
            return "off" if value is False else "on"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise WeaksegError(f"config key {where!r} must be a string, got {value!r}")
    return value


class ConfigProblems(WeaksegError):
    """Every problem of a config at once: one per line after a count (a single problem stays one line)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        text = self.problems[0] if len(self.problems) == 1 else \
            f"{len(self.problems)} config problems:\n  " + "\n  ".join(self.problems)
        super().__init__(text)


def _build(cls: type, raw: Mapping[str, Any], where: str = "") -> Any:
    problems: list[str] = []
    built = _build_lenient(cls, raw, where, problems)
    if problems:
        raise ConfigProblems(problems)
    return built


def _build_lenient(cls: type, raw: Mapping[str, Any], where: str, problems: list[str]) -> Any:
    """``cls`` from ``raw``, every bad key or value appended to ``problems`` and left at its default.

    Building on past a bad value lets the range checks run on everything else, so one message lists every
    problem of the config, type and range alike.
    """
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in raw.items():   # collect every bad key and value, not just the first
        try:
            if key not in types_:
                raise _unknown_key_error(where, str(key), list(types_))
            tp = types_[key]
            if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
                kwargs[key] = _build_lenient(tp, value, f"{where}{key}.", problems)
            else:
                kwargs[key] = _coerce(value, tp, where + key)
        except ConfigProblems as err:
            problems += err.problems
        except WeaksegError as err:
            problems.append(str(err))
    return cls(**kwargs)


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Validate a plain dict: unknown keys, wrong types and, when any of those exist, the ranges of the rest.

    Every problem is raised at once (``ConfigProblems``); the range checks of a config without type problems
    are ``validate_config``'s (called by ``load_config``).
    """
    problems: list[str] = []
    cfg = _build_lenient(Config, raw, "", problems)
    if problems:
        raise ConfigProblems(problems + config_problems(cfg))
    return cfg


#: Keys added after runs had been stored, with the value that reproduces what those runs did.
FORMER_DEFAULTS: dict[tuple[str, ...], Any] = {("smile", "calibrate_pos_weight"): False}


def upgrade_stored_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A config stored by an earlier weakseg (a checkpoint's or a run folder's), completed to today's schema.

    Keys it lacks take the value that reproduces the stored run (``FORMER_DEFAULTS``), else today's default,
    so that old runs evaluate, resume and rebuild as they were trained. A stored config without
    ``smile.calibrate_pos_weight`` predates ``model.kwargs.head_channels`` too: its segmentation heads had
    the image-channel width, so ``head_channels: image`` is set unless given. A config already complete
    comes back unchanged. SMILEr rounds stored their pseudo-label file and initial weights as absolute paths
    in ``smiler``: neither is needed to evaluate or predict, so the file key is dropped and the weights' path
    becomes ``train.init_from`` (read only when a run starts). Keys stored under a former spelling
    (``RENAMED_KEYS``) take today's, without a warning: a stored config is not the user's to edit.
    """
    raw = _upgrade_smiler_paths(rename_old_keys(raw, warn=False))
    out = deep_merge(to_dict(Config()), raw)
    for path, value in FORMER_DEFAULTS.items():
        node: Any = raw
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
            if node is None:
                break
        if node is None:
            target = out
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
    if "calibrate_pos_weight" not in (raw.get("smile") or {}):
        out["model"]["kwargs"] = {**out["model"].get("kwargs", {}), "head_channels": "image",
                                  **(raw.get("model") or {}).get("kwargs", {})}
    return out


def _upgrade_smiler_paths(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    smiler = raw.get("smiler")
    if not isinstance(smiler, Mapping) or not {"pseudo_labels", "init_from"} & set(smiler):
        return raw
    init = smiler.get("init_from")
    out = {**raw, "smiler": {k: v for k, v in smiler.items() if k not in ("pseudo_labels", "init_from")}}
    if init is not None:
        out["train"] = {**(raw.get("train") or {}), "init_from": init}
    return out


def load_config(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config (or only defaults), apply its preset and ``--set`` overrides, validate."""
    raw = _load_with_bases(resolve_config_path(path)) if path is not None else {}
    raw = apply_overrides(raw, overrides)
    preset = (raw.get("data") or {}).get("preset") if isinstance(raw.get("data"), Mapping) else None
    if preset:
        preset_file = configs_root() / "presets" / f"{preset}.yaml"
        if not preset_file.is_file():
            raise WeaksegError(f"unknown preset {preset!r} (data.preset); available presets: "
                               f"{', '.join(list_presets()) or 'none found in ' + str(configs_root())}")
        raw = deep_merge(_load_with_bases(preset_file), raw)
    cfg = config_from_dict(raw)
    validate_config(cfg)
    return cfg


def validate_config(cfg: Config) -> None:
    """Range checks that need no data; every problem is reported at once, before any work is done."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigProblems(problems)


def config_problems(cfg: Config) -> list[str]:
    """The range problems of a well-typed config (values that need no data to check), one line each.

    Fields with a fixed set of values are checked by their ``Literal`` types (``choice_problems``), first.
    """
    problems = choice_problems(cfg)
    m = cfg.data.mnist
    if not 0.0 < m.labeled_fraction <= 1.0:
        problems.append(f"data.mnist.labeled_fraction must be in (0, 1], got {m.labeled_fraction}; "
                        "use e.g. --set data.mnist.labeled_fraction=0.01")
    if m.labeled_sources is not None and m.label_unit == "source":
        problems.append("data.mnist.labeled_sources applies only with data.mnist.label_unit=canvas; remove it or "
                        "set --set data.mnist.label_unit=canvas")
    if m.labeled_sources is not None and m.labeled_sources < 1:
        problems.append(f"data.mnist.labeled_sources must be >= 1, got {m.labeled_sources}")
    t = cfg.train
    for name in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every"):
        if getattr(t, name) < 1:
            problems.append(f"train.{name} must be >= 1, got {getattr(t, name)}")
    for name in ("max_skipped", "max_rollbacks"):
        if getattr(t, name) < 0:
            problems.append(f"train.{name} must be >= 0, got {getattr(t, name)}")
    if not (t.lr_poly_exponent > 0 and math.isfinite(t.lr_poly_exponent)):
        problems.append(f"train.lr_poly_exponent must be a finite number > 0, got {t.lr_poly_exponent}")
    if not (cfg.smile.dice_weight >= 0 and math.isfinite(cfg.smile.dice_weight)):
        problems.append(f"smile.dice_weight must be a finite number >= 0, got {cfg.smile.dice_weight}")
    if cfg.model.width <= 0:
        problems.append(f"model.width must be > 0, got {cfg.model.width}")
    return problems


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict of str/int/float/bool/None/list/dict (loads with ``weights_only=True``)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Config, path: str | os.PathLike[str]) -> None:
    """Write the resolved config atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yaml.safe_dump(to_dict(cfg), f, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:            # a full disk or an interrupt leaves no stray .tmp
        tmp.unlink(missing_ok=True)
        raise


def diff_configs(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += diff_configs(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}")
    return out
